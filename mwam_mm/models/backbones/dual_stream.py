"""A backbone with one stream per modality, built from any registered backbone."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleDict, ModuleList
from mmengine.registry import MODELS

from ...modality import LayoutLike, ModalityLayout
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

    def fuse(self, outs: Dict[str, tuple]) -> tuple:
        """Fuse the streams' outputs level by level."""
        for name, levels in outs.items():
            if len(levels) != len(self.fusions):
                raise RuntimeError(
                    f'DualStreamBackbone: stream {name!r} returned {len(levels)} '
                    f'levels, expected {len(self.fusions)} (out_channels '
                    f'{self.out_channels})')
        levels = zip(*(outs[m.name] for m in self.layout))
        return tuple(fuse(list(feats)) for fuse, feats in zip(self.fusions, levels))

    def forward(self, x: torch.Tensor) -> tuple:
        return self.fuse(self.forward_streams(x))
