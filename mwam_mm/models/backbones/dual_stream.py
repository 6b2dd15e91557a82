"""A backbone with one stream per modality, built from any registered backbone."""
import copy
import inspect
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule, ModuleDict, ModuleList
from mmengine.registry import MODELS

from ...modality import LayoutLike, ModalityLayout
from ...registry_utils import build_from_registry
from ..grad_scale import scale_gradient


class BackboneOutputs(NamedTuple):
    """What :meth:`DualStreamBackbone.forward_with_streams` returns."""
    streams: Dict[str, tuple]  # each modality's own output levels, before fusion
    fused: tuple  # the fused levels: what backbone(x) returns
    losses: Dict[str, torch.Tensor]  # the missing substitute's own (training)


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

    **Known-missing modalities.** ``forward(x, presence)`` takes the batch's
    ``(B, M)`` presence mask (see :mod:`mwam_mm.presence`: our RGB-T models build
    it from the samples' ``missing_modalities`` and pass it). Where a sample's
    modality is missing, that stream's output features for that sample are
    replaced by the ``missing_substitute``'s before fusion, and the fusion modules
    get the mask. The stream still runs on every sample, so DDP sees every
    parameter used. A stock detector calls ``backbone(x)``: every modality counts
    as present (less ``ignore_modalities``).

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
            Defaults to ``dict(type='ZeroSubstitute')``. A substitute with a
            ``loss(outs, presence)`` method (a learned proxy) has losses of its
            own: the RGB-T detectors and segmentors ask for them
            (:meth:`substitute_losses`) in every training forward and return them
            with theirs. A substitute
            whose ``predicts_features`` is True (a learned proxy) stands in for
            the missing features: the fusion modules then get no presence mask
            and weigh its predictions as they weigh real features (otherwise
            ``GatedFusion`` would give them weight 0).
        ignore_modalities (Sequence[str]): Modalities the model never uses: their
            streams are not built, and they count as missing in every sample, in
            training and test (a unimodal model, e.g. the ``unimodal-rgb``
            ceiling, with the data pipeline of the fused one). Default: none.
        stream_adapter (dict, optional): A module built per used modality with
            ``channels`` (the output channels per level), applied to that
            stream's output levels (e.g. ``dict(type='LowRankAdapter', rank=1)``
            over frozen pretrained streams).
        freeze_streams (bool): Keep the streams' parameters fixed
            (``requires_grad=False``, norm layers in eval mode); with
            ``stream_adapter`` only the adapters, fusion and heads learn.
        init_cfg (dict, optional): Initialisation of the fusion modules; streams use
            their own ``init_cfg``.

    Training-time balancing (used only while the backbone is in training mode,
    on the fused path of :meth:`fuse`):

    - the fused gradient scale (:meth:`set_fused_grad_scale`, default 1): the
      gradient flowing back from the fusion into the streams is multiplied by it
      (RSC-MD's modality decoupling: 0 stops it, so each stream learns from its
      own auxiliary loss only); :class:`~mwam_mm.engine.RSCMDHook` sets it.
    - ``sample_weights`` (argument of :meth:`forward` and :meth:`fuse`, ``(B, M)``):
      each sample's stream features are multiplied by its weight per modality
      before fusion (BTW; the models pass the samples' ``modality_weights``).
    """

    def __init__(self,
                 backbone: dict,
                 modalities: LayoutLike = None,
                 streams: Optional[Dict[str, dict]] = None,
                 fusion: dict = dict(type='AddFusion'),
                 out_channels: Optional[Sequence[int]] = None,
                 probe_size: Tuple[int, int] = (64, 64),
                 missing_substitute: dict = dict(type='ZeroSubstitute'),
                 ignore_modalities: Sequence[str] = (),
                 stream_adapter: Optional[dict] = None,
                 freeze_streams: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.layout = ModalityLayout.build(modalities)
        streams = dict(streams or {})
        self.layout.check_subset(list(streams))
        if isinstance(ignore_modalities, str):
            ignore_modalities = [ignore_modalities]
        self.ignored = self.layout.check_subset(list(ignore_modalities))
        if len(self.ignored) >= len(self.layout):
            raise ValueError(
                f'DualStreamBackbone: ignore_modalities={list(ignore_modalities)} '
                f'leaves no modality of {self.layout.names} to use')
        self.used = [n for n in self.layout.names if n not in self.ignored]
        # mmengine's containers: their init_weights reaches each stream's init_cfg
        self.streams = ModuleDict()
        for m in self.layout:
            if m.name in self.ignored:
                continue
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
        self.missing_substitute = build_from_registry(
            MODELS, missing_substitute,
            **self._context_args(missing_substitute, self.out_channels))
        self._fusion_takes_presence = [
            'presence' in inspect.signature(f.forward).parameters for f in self.fusions
        ]
        # a learned proxy's predictions are fused as features, not masked out
        self._fuse_substitutes = bool(
            getattr(self.missing_substitute, 'predicts_features', False))
        self.adapters = None
        if stream_adapter is not None:
            self.adapters = ModuleDict({
                name:
                build_from_registry(
                    MODELS, stream_adapter, channels=list(self.out_channels))
                for name in self.used
            })
        self.freeze_streams = freeze_streams
        if freeze_streams:
            for p in self.streams.parameters():
                p.requires_grad = False
        self.fused_grad_scale = 1.0

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_streams:  # frozen norm statistics too
            self.streams.eval()
        return self

    def _context_args(self, cfg: dict, channels: List[int]) -> dict:
        """``channels`` (per level) and ``modalities`` (layout names) for a
        registered class whose ``__init__`` takes them (a learned substitute)."""
        cls = cfg.get('type')
        if isinstance(cls, str):
            cls = MODELS.get(cls)
        if cls is None or not inspect.isclass(cls):
            return {}
        params = inspect.signature(cls.__init__).parameters
        args = dict(channels=list(channels), modalities=list(self.layout.names))
        return {k: v for k, v in args.items() if k in params and k not in cfg}

    @staticmethod
    def _as_tuple(outs) -> tuple:
        return tuple(outs) if isinstance(outs, (list, tuple)) else (outs, )

    @torch.no_grad()
    def _probe_out_channels(self, probe_size: Tuple[int, int]) -> List[int]:
        per_stream = {}
        for m in self.layout:
            if m.name in self.ignored:
                continue
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
        """Each modality's stream outputs (after its adapter), before fusion; an
        ignored modality's are zeros."""
        parts = self.layout.split(x, dim=1)
        outs = {}
        for name in self.used:
            levels = self._as_tuple(self.streams[name](parts[name]))
            if self.adapters is not None:
                levels = self._as_tuple(self.adapters[name](levels))
            outs[name] = levels
        if self.ignored:
            template = outs[self.used[0]]
            for name in self.ignored:
                outs[name] = tuple(torch.zeros_like(level) for level in template)
        return {name: outs[name] for name in self.layout.names}

    def resolve_presence(self, presence: Optional[torch.Tensor], batch_size: int,
                         device: torch.device) -> Optional[torch.Tensor]:
        """The batch's ``(B, M)`` presence mask, or ``None`` when all are present.

        ``presence`` checked against the batch, with ``ignore_modalities`` marked
        missing in every sample.
        """
        if presence is None and not self.ignored:
            return None
        if presence is None:
            presence = torch.ones(
                batch_size, len(self.layout), dtype=torch.bool, device=device)
        expected = (batch_size, len(self.layout))
        if tuple(presence.shape) != expected:
            raise ValueError(
                f'DualStreamBackbone: the presence mask has shape '
                f'{tuple(presence.shape)}, the batch needs {expected} (samples x '
                f'modalities {self.layout.names}), built from the samples\' '
                f'missing_modalities; pass one row per sample, or None.')
        presence = presence.to(device=device, dtype=torch.bool)
        if self.ignored:
            presence = presence.clone()
            for name in self.ignored:
                presence[:, self.layout.names.index(name)] = False
        if not presence.any(dim=1).all():
            ignored = (f'; the model ignores {self.ignored} (ignore_modalities) and '
                       f'uses only {self.used}' if self.ignored else '')
            raise ValueError('DualStreamBackbone: a sample has every modality '
                             f'missing (presence {presence.tolist()}, modalities '
                             f'{self.layout.names}){ignored}')
        return None if bool(presence.all()) else presence

    @property
    def has_substitute_losses(self) -> bool:
        """Whether the missing substitute has losses of its own (a learned
        proxy)."""
        return hasattr(self.missing_substitute, 'loss')

    def substitute_losses(self, outs: Dict[str, tuple],
                          presence: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The missing substitute's own losses on the streams' outputs (a learned
        proxy's), in training; ``{}`` otherwise. Computed also when nothing is
        missing: a proxy learns from the full samples."""
        if not (self.training and self.has_substitute_losses):
            return {}
        return dict(self.missing_substitute.loss(outs, presence))

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
             presence: Optional[torch.Tensor] = None,
             sample_weights: Optional[torch.Tensor] = None) -> tuple:
        """Fuse the streams' outputs level by level.

        Args:
            outs (dict): Each modality's output levels (:meth:`forward_streams`,
                after :meth:`replace_missing`).
            presence (Tensor, optional): The resolved mask (see
                :meth:`resolve_presence`), given to the fusion modules.
            sample_weights (Tensor, optional): ``(B, M)`` weights on each
                sample's stream features, in training mode only (BTW).
        """
        for name, levels in outs.items():
            if len(levels) != len(self.fusions):
                raise RuntimeError(
                    f'DualStreamBackbone: stream {name!r} returned {len(levels)} '
                    f'levels, expected {len(self.fusions)} (out_channels '
                    f'{self.out_channels})')
        if self.training:
            outs = self._balance(outs, sample_weights)
        if self._fuse_substitutes:
            # masking the predicted features would throw the prediction away
            # (GatedFusion) and train the proxy for nothing
            presence = None
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

    def set_fused_grad_scale(self, scale: float) -> None:
        """Set the factor on the gradient from the fusion into the streams, used
        in training mode only (RSC-MD's modality decoupling; 1 = none)."""
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not 0.0 <= scale <= 1.0:
            raise ValueError('DualStreamBackbone.set_fused_grad_scale: the scale must '
                             f'be a number in [0, 1], got {scale!r}')
        self.fused_grad_scale = float(scale)

    def _balance(self, outs: Dict[str, tuple],
                 weights: Optional[torch.Tensor]) -> Dict[str, tuple]:
        """The per-sample weights and the fused gradient scale."""
        scale = float(self.fused_grad_scale)
        if weights is None and scale == 1.0:
            return outs
        if weights is not None:
            batch = next(iter(outs.values()))[0].shape[0]
            if tuple(weights.shape) != (batch, len(self.layout)):
                raise ValueError('DualStreamBackbone: sample_weights has shape '
                                 f'{tuple(weights.shape)}, the batch needs '
                                 f'{(batch, len(self.layout))} (samples x modalities '
                                 f'{self.layout.names})')
        balanced = {}
        for index, (name, levels) in enumerate(outs.items()):
            if scale != 1.0:
                levels = tuple(scale_gradient(level, scale) for level in levels)
            if weights is not None:
                w = weights[:, index].to(levels[0])
                levels = tuple(level * w.view(-1, *([1] * (level.dim() - 1)))
                               for level in levels)
            balanced[name] = levels
        return balanced

    def forward(self,
                x: torch.Tensor,
                presence: Optional[torch.Tensor] = None,
                sample_weights: Optional[torch.Tensor] = None) -> tuple:
        """Fused features of the stacked input ``x``.

        Args:
            x (Tensor): ``(B, C, H, W)``, channels in layout order.
            presence (Tensor, optional): ``(B, M)`` bool, True where a modality is
                present; ``None``: every modality of every sample (less
                ``ignore_modalities``).
            sample_weights (Tensor, optional): ``(B, M)`` weights on each
                sample's stream features before fusion, training mode only.
        """
        if self.training and self.has_substitute_losses:
            # stock detectors call backbone(x) and would drop the proxy's loss
            raise RuntimeError(
                f'DualStreamBackbone: the missing substitute '
                f'{type(self.missing_substitute).__name__} learns from losses of its '
                'own, which backbone(x) cannot return; train it inside an RGB-T model '
                "(type='RGBTSingleStageDetector', 'RGBTTwoStageDetector' or "
                "'RGBTEncoderDecoder'), which adds them to its losses")
        return self.forward_with_streams(x, presence, sample_weights).fused

    def forward_with_streams(self,
                             x: torch.Tensor,
                             presence: Optional[torch.Tensor] = None,
                             sample_weights: Optional[torch.Tensor] = None,
                             with_losses: bool = False) -> BackboneOutputs:
        """:meth:`forward`, keeping each stream's own outputs (for auxiliary
        heads and unimodal views) and, with ``with_losses``, the missing
        substitute's own losses (in training; ``{}`` otherwise).

        Args:
            x, presence, sample_weights: As :meth:`forward`.
            with_losses (bool): Compute :meth:`substitute_losses`.
        """
        presence = self.resolve_presence(presence, x.shape[0], x.device)
        streams = self.forward_streams(x)
        losses = self.substitute_losses(streams, presence) if with_losses else {}
        fused = self.fuse(
            self.replace_missing(streams, presence), presence, sample_weights)
        return BackboneOutputs(streams, fused, losses)
