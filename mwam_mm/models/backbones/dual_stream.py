"""A backbone with one stream per modality, built from any registered backbone."""
import copy
import inspect
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleDict, ModuleList
from mmengine.registry import MODELS

from ...modality import LayoutLike, ModalityLayout
from ...presence import current_batch_presence
from ...registry_utils import build_from_registry


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) \
                and not value.get('_delete_', False):
            merged[key] = _merge(merged[key], value)
        else:
            value = copy.deepcopy(value)
            if isinstance(value, dict):
                value.pop('_delete_', None)
            merged[key] = value
    return merged


@MODELS.register_module()
class DualStreamBackbone(BaseModule):
    """One backbone stream per modality, stage outputs fused level by level.

    The input is the stacked multimodal image (``B x C x H x W``, channels in the
    order of the modality layout). Each modality's channels go through its own
    stream, built from ``backbone`` (any backbone registered in the config's scope:
    ResNet, ResNeXt, Swin, PVT, MiT ...); the streams' outputs are fused per level
    by a fusion module, and the fused tuple is what the neck or decode head gets.

    Each stream's ``in_channels`` is set from the layout (1 for grey thermal).
    Per-stream settings (``frozen_stages``, ``init_cfg`` with a local checkpoint,
    ``norm_eval`` ...) go in ``streams``, merged over ``backbone``.

    The streams are the modality branches that :class:`mwam_mm.engine.MWAMHook`
    balances (see :meth:`modality_branches`); the fusion modules are shared and
    left alone.

    **Known-missing modalities.** When a sample's modality is marked missing (the
    presence mask of :mod:`mwam_mm.presence`, published by the RGB-T data
    preprocessors from the samples' ``missing_modalities``, or passed as
    ``presence``), that stream's output features for that sample are replaced by
    the ``missing_substitute``'s before fusion, and the fusion modules get the mask.
    The stream still runs on every sample, so DDP sees every parameter used.

    Args:
        backbone (dict): Config of one stream (its ``in_channels`` is set per
            modality).
        modalities (list[dict], optional): Modality layout; ``None`` for the default
            RGB + 1-channel thermal.
        streams (dict, optional): ``{modality: partial config}`` merged over
            ``backbone`` for that modality's stream.
        fusion (dict): Fusion module config, built once per level with
            ``channels`` and ``num_modalities``. ``AddFusion``, ``ConcatConvFusion``,
            ``GatedFusion`` or any registered module with that interface.
            Defaults to ``dict(type='AddFusion')``.
        out_channels (Sequence[int], optional): Channels of each output level. By
            default found by running the streams once on a small zero input of
            ``probe_size``.
        probe_size (tuple[int, int]): Input size of that probe. Defaults to
            ``(64, 64)``.
        missing_substitute (dict): What replaces a missing modality's features.
            Defaults to ``dict(type='ZeroSubstitute')``.
        init_cfg (dict, optional): Initialisation of the fusion modules; streams use
            their own ``init_cfg``.
    """

    def __init__(self,
                 backbone: dict,
                 modalities: LayoutLike = None,
                 streams: Optional[Dict[str, dict]] = None,
                 fusion: dict = dict(type='AddFusion'),
                 out_channels: Optional[Sequence[int]] = None,
                 probe_size: Tuple[int, int] = (64, 64),
                 missing_substitute: dict = dict(type='ZeroSubstitute'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.layout = ModalityLayout.build(modalities)
        streams = dict(streams or {})
        self.layout.check_subset(list(streams))
        # mmengine's containers: their init_weights reaches each stream's init_cfg
        self.streams = ModuleDict()
        for m in self.layout:
            cfg = _merge(backbone, streams.get(m.name, {}))
            given = cfg.get('in_channels')
            if given is not None and given != m.channels:
                raise ValueError(
                    f'DualStreamBackbone: stream {m.name!r} has in_channels={given}, '
                    f'but the modality layout gives it {m.channels} channel(s)')
            cfg['in_channels'] = m.channels
            self.streams[m.name] = build_from_registry(MODELS, cfg)
        if out_channels is None:
            out_channels = self._probe_out_channels(probe_size)
        self.out_channels = list(out_channels)
        self.fusions = ModuleList([
            build_from_registry(
                MODELS, fusion, channels=c, num_modalities=len(self.layout))
            for c in self.out_channels
        ])
        self.missing_substitute = build_from_registry(MODELS, missing_substitute)
        self._fusion_takes_presence = [
            'presence' in inspect.signature(f.forward).parameters for f in self.fusions
        ]

    @staticmethod
    def _as_tuple(outs) -> tuple:
        return tuple(outs) if isinstance(outs, (list, tuple)) else (outs, )

    @torch.no_grad()
    def _probe_out_channels(self, probe_size: Tuple[int, int]) -> List[int]:
        per_stream = {}
        for m in self.layout:
            stream = self.streams[m.name]
            was_training = stream.training
            stream.eval()
            try:
                x = torch.zeros(1, m.channels, *probe_size)
                outs = self._as_tuple(stream(x))
            finally:
                stream.train(was_training)
            per_stream[m.name] = [o.shape[1] for o in outs]
        channels = list(per_stream.values())
        if any(c != channels[0] for c in channels):
            raise ValueError('DualStreamBackbone: the streams give different output '
                             f'channels per level: {per_stream}; fusion needs equal '
                             'channels (same stream architecture and out_indices)')
        return channels[0]

    def modality_branches(self) -> Dict[str, nn.Module]:
        """``{modality: stream}``: the branches MWAM balances."""
        return dict(self.streams.items())

    def forward_streams(self, x: torch.Tensor) -> Dict[str, tuple]:
        """Each modality's stream outputs, before fusion."""
        parts = self.layout.split(x, dim=1)
        return {
            name: self._as_tuple(self.streams[name](part))
            for name, part in parts.items()
        }

    def resolve_presence(self, presence: Optional[torch.Tensor], batch_size: int,
                         device: torch.device) -> Optional[torch.Tensor]:
        """The batch's ``(B, M)`` presence mask, or ``None`` when all are present.

        ``presence`` if given, else the mask the data preprocessor published for
        this batch (:func:`mwam_mm.presence.current_batch_presence`).
        """
        if presence is None:
            presence = current_batch_presence()
        if presence is None:
            return None
        expected = (batch_size, len(self.layout))
        if tuple(presence.shape) != expected:
            raise ValueError(
                f'DualStreamBackbone: the presence mask has shape '
                f'{tuple(presence.shape)}, the batch needs {expected} (samples x '
                f'modalities {self.layout.names}). A mask published by the data '
                'preprocessor belongs to the batch it preprocessed; a direct call '
                'to the backbone passes its own presence, or None.')
        presence = presence.to(device=device, dtype=torch.bool)
        if not presence.any(dim=1).all():
            raise ValueError('DualStreamBackbone: a sample has every modality '
                             f'missing (presence {presence.tolist()})')
        return None if bool(presence.all()) else presence

    def replace_missing(self, outs: Dict[str, tuple],
                        presence: Optional[torch.Tensor]) -> Dict[str, tuple]:
        """Each missing modality's features replaced by the substitute's, per
        sample; the present samples' features untouched."""
        if presence is None:
            return outs
        substitutes = self.missing_substitute(outs, presence)
        replaced = dict(outs)
        for index, name in enumerate(self.layout.names):
            if name not in substitutes:
                continue
            keep = presence[:, index]
            replaced[name] = tuple(
                # where, not a product: exact, and the stream stays in the graph
                torch.where(keep.view(-1, *([1] * (own.dim() - 1))), own, sub)
                for own, sub in zip(outs[name], substitutes[name]))
        return replaced

    def fuse(self,
             outs: Dict[str, tuple],
             presence: Optional[torch.Tensor] = None) -> tuple:
        """Fuse the streams' outputs level by level (``presence``: see
        :meth:`resolve_presence`; given to the fusion modules when not None)."""
        for name, levels in outs.items():
            if len(levels) != len(self.fusions):
                raise RuntimeError(
                    f'DualStreamBackbone: stream {name!r} returned {len(levels)} '
                    f'levels, expected {len(self.fusions)} (out_channels '
                    f'{self.out_channels})')
        levels = zip(*(outs[m.name] for m in self.layout))
        if presence is None:
            return tuple(fuse(list(feats)) for fuse, feats in zip(self.fusions, levels))
        fused = []
        for fuse, takes, feats in zip(self.fusions, self._fusion_takes_presence,
                                      levels):
            if not takes:
                raise TypeError(
                    f'DualStreamBackbone: the fusion module {type(fuse).__name__} '
                    'cannot take a presence mask (its forward has no `presence` '
                    'argument), and this batch has missing modalities; add '
                    '`presence=None` to its forward (a (B, M) bool tensor, True '
                    'where present) or use AddFusion, ConcatConvFusion or '
                    'GatedFusion')
            fused.append(fuse(list(feats), presence=presence))
        return tuple(fused)

    def forward(self,
                x: torch.Tensor,
                presence: Optional[torch.Tensor] = None) -> tuple:
        """Fused features of the stacked input ``x``.

        Args:
            x (Tensor): ``(B, C, H, W)``, channels in layout order.
            presence (Tensor, optional): ``(B, M)`` bool, True where a modality is
                present. Defaults to the mask published for this batch.
        """
        presence = self.resolve_presence(presence, x.shape[0], x.device)
        outs = self.replace_missing(self.forward_streams(x), presence)
        return self.fuse(outs, presence)
