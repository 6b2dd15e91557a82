"""CMPT-style cross-modal proxies: a missing modality's features predicted from
the present ones.

CMPT (Reza et al., arXiv 2501.17823) gives each missing modality a proxy token that
approximates its class token by attending only to the available modality's tokens,
trains it with an alignment loss against the real token on fully present samples
(weight 0.2), and gates the proxy in fusion. A detector or segmentor needs a whole
feature map per level instead of one token, so this adaptation is ours (see
``docs/balancing-methods.md``, CMPT): per backbone level and per ordered pair of
modalities ``src -> dst``, a light module predicts ``dst``'s feature map from
``src``'s. It is a substitute of :class:`~mwam_mm.models.DualStreamBackbone`
(``missing_substitute=dict(type='CrossModalProxy')``), which passes it the
output channels per level and the layout's modality names; the RGB-T detector or
segmentor asks for :meth:`loss` in every training forward (through the backbone's
``substitute_losses()``) and returns it with its own losses; :meth:`forward` runs
only when a sample has a modality
marked missing: with every modality present at test time the proxy costs nothing.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..modality import ModalityLayout

Levels = Tuple[torch.Tensor, ...]
KINDS = ('conv', 'attention')
GATES = ('channel', 'scalar')
LOSS_TYPES = ('mse', 'cosine')
LOSS_KEY = 'loss_cmpt_align'


class ConvProxy(nn.Module):
    """``conv(k x k) -> norm -> act -> conv(1 x 1)``: one level of ``dst`` from
    ``src`` (CNN streams). The last conv starts at zero (a zero prediction, as
    :class:`~mwam_mm.models.ZeroSubstitute`), so a new proxy cannot disturb the
    fusion before it has learnt anything.

    Args:
        channels (int): The level's channels (in and out).
        hidden (int): Channels between the two convs.
        kernel_size (int): Kernel of the first conv (odd: the size is kept).
        norm_cfg (dict): Norm after the first conv.
        act_cfg (dict): Activation after it.
    """

    def __init__(self, channels: int, hidden: int, kernel_size: int, norm_cfg: dict,
                 act_cfg: dict):
        super().__init__()
        self.conv = ConvModule(
            channels,
            hidden,
            kernel_size,
            padding=kernel_size // 2,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.out = nn.Conv2d(hidden, channels, 1)
        self.reset_output()

    def reset_output(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x))


class QueryProxy(nn.Module):
    """Learned query tokens gather the ``src`` level; every position reads them
    back (transformer streams; any stream giving ``(B, C, H, W)`` maps).

    ``num_queries`` proxy tokens cross-attend to the level's ``H x W`` patch
    tokens (CMPT's proxy attends only to the available modality); each patch
    token then cross-attends to the proxy tokens, and a linear layer maps the
    patch token plus what it read to the predicted ``dst`` feature. Cost:
    ``O(H W num_queries C)``, linear in the number of patches. The output layer
    starts at zero (see :class:`ConvProxy`).

    Args:
        channels (int): The level's channels (the token width).
        num_queries (int): Number of proxy tokens.
        num_heads (int): Attention heads (must divide ``channels``).
    """

    def __init__(self, channels: int, num_queries: int, num_heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.queries = nn.Parameter(torch.empty(num_queries, channels))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.gather = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.scatter = nn.MultiheadAttention(channels, num_heads, batch_first=True)
        self.out = nn.Linear(channels, channels)
        self.reset_output()

    def reset_output(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (B, HW, C)
        queries = self.queries.unsqueeze(0).expand(b, -1, -1)
        proxies, _ = self.gather(queries, tokens, tokens, need_weights=False)
        read, _ = self.scatter(tokens, proxies, proxies, need_weights=False)
        return self.out(tokens + read).transpose(1, 2).reshape(b, c, h, w)


@MODELS.register_module()
class CrossModalProxy(BaseModule):
    """Predicts a missing modality's features from the present ones (CMPT, ours
    for dense tasks), trained by an alignment loss on fully present samples.

    **Prediction.** For each level ``l`` and ordered pair ``src -> dst`` of
    modalities a predictor (``kind='conv'``: :class:`ConvProxy`;
    ``kind='attention'``: :class:`QueryProxy`) maps ``src``'s features to
    ``dst``'s. When ``dst`` is marked missing in a sample, its prediction is the
    mean of the predictions from the modalities present in that sample (with two
    modalities: from the other one), multiplied by a learned gate
    ``sigmoid(g_dst,l)`` (per channel or one scalar per level): how much the
    fusion is to trust the proxy. The backbone uses it in place of the zeros for
    that sample only; predictors run on the samples that need them only.

    **Alignment loss** (:meth:`loss`, key ``loss_cmpt_align``): on the samples
    with every modality present, the mean over levels and ordered pairs of
    ``align(predictor(f_src), stopgrad(f_dst))``, times ``loss_weight``;
    ``align`` is the mean squared error over all elements (``'mse'``) or
    ``1 - cosine similarity`` over channels, averaged over positions
    (``'cosine'``). The target stream gets no gradient from it; the source stream
    does (it learns to carry what predicts the other modality) unless
    ``detach_source``. The gate is not in this loss (it learns from the task loss
    on samples with a modality missing, e.g. under modality dropout). With no fully
    present sample in the batch the loss is a zero that still reaches every
    parameter (DDP expects a gradient for each).

    The last layer of each predictor starts at zero, so a new proxy predicts
    zeros until it learns. Its predictions are fused as real features
    (``predicts_features``): with ``AddFusion`` or ``ConcatConvFusion`` a new
    proxy behaves as :class:`~mwam_mm.models.ZeroSubstitute`; ``GatedFusion``
    gives the predicted features a learned weight instead of 0.

    Args:
        channels (Sequence[int]): Channels of each backbone level (the backbone
            passes its ``out_channels``).
        modalities (Sequence[str], optional): Modality names in layout order (the
            backbone passes its layout's). Defaults to the default layout's
            (``['rgb', 'thermal']``).
        kind (str): ``'conv'`` (default; CNN streams) or ``'attention'`` (learned
            query tokens; transformer streams such as MiT).
        kernel_size (int): ``'conv'``: kernel of the first conv (odd). Default 3.
        hidden_ratio (int): ``'conv'``: hidden channels ``max(C // hidden_ratio,
            8)``. Default 4.
        norm_cfg (dict): ``'conv'``: norm layer. Default ``dict(type='BN')``.
        act_cfg (dict): ``'conv'``: activation. Default ``dict(type='ReLU')``.
        num_queries (int): ``'attention'``: proxy tokens per level. Default 4.
        num_heads (int): ``'attention'``: heads (dividing every level's
            channels). Default 1.
        gate (str): ``'channel'`` (default: one gate per channel and level) or
            ``'scalar'`` (one per level), per missing modality.
        gate_init (float): Initial gate logit (0: the gate starts at 0.5).
        loss_type (str): ``'mse'`` (default) or ``'cosine'``.
        loss_weight (float): Weight of the alignment loss (CMPT's lambda).
            Default 0.2.
        detach_source (bool): Stop the alignment loss's gradient into the source
            stream too. Default False.
        init_cfg (dict, optional): Initialisation (the predictors' last layers
            are zeroed after it).
    """

    predicts_features = True

    def __init__(self,
                 channels: Sequence[int],
                 modalities: Optional[Sequence[str]] = None,
                 kind: str = 'conv',
                 kernel_size: int = 3,
                 hidden_ratio: int = 4,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 num_queries: int = 4,
                 num_heads: int = 1,
                 gate: str = 'channel',
                 gate_init: float = 0.0,
                 loss_type: str = 'mse',
                 loss_weight: float = 0.2,
                 detach_source: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if isinstance(channels, int) or not channels or not all(
                isinstance(c, int) and c > 0 for c in channels):
            raise ValueError('CrossModalProxy: channels must be a non-empty list of '
                             f'positive channel counts, one per backbone level; got '
                             f'{channels!r}')
        if modalities is None:
            modalities = ModalityLayout.build(None).names
        modalities = [modalities] if isinstance(modalities, str) else list(modalities)
        if len(modalities) < 2 or len(set(modalities)) != len(modalities):
            raise ValueError('CrossModalProxy: modalities must be at least two '
                             f'distinct names, got {modalities!r}')
        for name, value, allowed in (('kind', kind, KINDS), ('gate', gate, GATES),
                                     ('loss_type', loss_type, LOSS_TYPES)):
            if value not in allowed:
                raise ValueError(f'CrossModalProxy: unknown {name} {value!r}; '
                                 f'expected one of {allowed}')
        if kind == 'conv' and (kernel_size < 1 or kernel_size % 2 == 0):
            raise ValueError('CrossModalProxy: kernel_size must be odd (the feature '
                             f'map keeps its size), got {kernel_size!r}')
        if kind == 'attention':
            bad = [c for c in channels if c % num_heads]
            if num_queries < 1 or bad:
                raise ValueError(
                    f'CrossModalProxy: kind=\'attention\' needs num_queries >= 1 '
                    f'(got {num_queries}) and num_heads ({num_heads}) dividing every '
                    f'level\'s channels {list(channels)}')
        if not loss_weight >= 0:
            raise ValueError(
                f'CrossModalProxy: loss_weight must be >= 0, got {loss_weight!r}')
        self.channels = list(channels)
        self.modalities = modalities
        self.kind = kind
        self.gate_mode = gate
        self.loss_type = loss_type
        self.loss_weight = float(loss_weight)
        self.detach_source = detach_source

        def predictor(c: int) -> nn.Module:
            if kind == 'conv':
                return ConvProxy(c, max(c // hidden_ratio, 8), kernel_size, norm_cfg,
                                 act_cfg)
            return QueryProxy(c, num_queries, num_heads)

        self.predictors = nn.ModuleDict({
            self.pair_key(src, dst):
            nn.ModuleList([predictor(c) for c in self.channels])
            for dst in modalities
            for src in modalities if src != dst
        })
        self.gates = nn.ModuleDict({
            dst:
            nn.ParameterList([
                nn.Parameter(
                    torch.full((c if gate == 'channel' else 1, ), float(gate_init)))
                for c in self.channels
            ])
            for dst in modalities
        })

    @staticmethod
    def pair_key(src: str, dst: str) -> str:
        """Key of the predictors of ``dst`` from ``src`` in ``predictors``."""
        return f'{src}_to_{dst}'

    def init_weights(self) -> None:
        super().init_weights()
        for levels in self.predictors.values():  # the zero start, after init_cfg
            for module in levels:
                module.reset_output()

    def gate(self, dst: str, level: int) -> torch.Tensor:
        """The gate ``sigmoid(g)`` of ``dst`` at ``level``, ``(1, C or 1, 1, 1)``."""
        return torch.sigmoid(self.gates[dst][level]).view(1, -1, 1, 1)

    # ------------------------------------------------------------------ checks
    def _check(self, outs: Dict[str, Levels], presence: Optional[torch.Tensor]) -> int:
        """Validate the streams' outputs; returns the batch size."""
        if list(outs) != self.modalities:
            raise ValueError(
                f'CrossModalProxy: built for modalities {self.modalities} (in this '
                f'order), got stream outputs for {list(outs)}; build it with the '
                "backbone's layout (DualStreamBackbone passes its names itself)")
        for name, levels in outs.items():
            if len(levels) != len(self.channels):
                raise ValueError(
                    f'CrossModalProxy: built for {len(self.channels)} levels '
                    f'(channels {self.channels}), but stream {name!r} gives '
                    f'{len(levels)} levels; build it with the backbone\'s out_channels '
                    '(DualStreamBackbone passes them itself when the config gives '
                    'no channels)')
            got = [level.shape[1] for level in levels]
            if got != self.channels:
                raise ValueError(
                    f'CrossModalProxy: built for channels {self.channels} per level, '
                    f'stream {name!r} gives {got}')
        batch = outs[self.modalities[0]][0].shape[0]
        if presence is not None and tuple(presence.shape) != (batch, len(
                self.modalities)):
            raise ValueError(
                f'CrossModalProxy: presence has shape {tuple(presence.shape)}, the '
                f'batch needs {(batch, len(self.modalities))} (samples x modalities '
                f'{self.modalities})')
        return batch

    def _source(self, feats: torch.Tensor) -> torch.Tensor:
        return feats.detach() if self.detach_source else feats

    # ---------------------------------------------------------------- forward
    def _predict(self, outs: Dict[str, Levels], presence: torch.Tensor, dst: str,
                 level: int, rows: torch.Tensor) -> torch.Tensor:
        """Ungated prediction of ``dst`` at ``level`` for the samples ``rows``:
        the mean over the modalities present in each of them."""
        target = outs[dst][level]
        total = target.new_zeros((len(rows), ) + tuple(target.shape[1:]))
        count = target.new_zeros(len(rows))
        for s, src in enumerate(self.modalities):
            if src == dst:
                continue
            available = presence[rows, s]
            if not bool(available.any()):
                continue
            pick = available.nonzero().squeeze(1)
            feats = self._source(outs[src][level][rows[pick]])
            pred = self.predictors[self.pair_key(src, dst)][level](feats)
            total = total.index_add(0, pick, pred.to(total.dtype))
            count = count.index_add(0, pick, torch.ones_like(pick, dtype=count.dtype))
        # every sample has a present modality (the backbone checks)
        return total / count.clamp(min=1).view(-1, 1, 1, 1)

    def forward(self, outs: Dict[str, Levels],
                presence: Optional[torch.Tensor]) -> Dict[str, Levels]:
        """Gated predictions for every modality missing in some sample.

        Args:
            outs (dict[str, tuple[Tensor]]): Each modality's stream outputs, one
                ``(B, C, H, W)`` tensor per level, in layout order.
            presence (Tensor): ``(B, M)`` bool, True where present.

        Returns:
            dict[str, tuple[Tensor]]: For each modality missing somewhere, one
            tensor per level shaped as the stream's: the gated prediction in the
            samples where it is missing, zeros elsewhere (the backbone keeps the
            stream's own features there).
        """
        self._check(outs, presence)
        if presence is None:
            return {}
        presence = presence.to(torch.bool)
        result = {}
        for d, dst in enumerate(self.modalities):
            absent = ~presence[:, d]
            if not bool(absent.any()):
                continue
            rows = absent.nonzero().squeeze(1)
            levels = []
            for level, own in enumerate(outs[dst]):
                pred = self._predict(outs, presence, dst, level, rows)
                pred = pred * self.gate(dst, level).to(pred.dtype)
                levels.append(
                    own.new_zeros(own.shape).index_copy(0, rows, pred.to(own.dtype)))
            result[dst] = tuple(levels)
        return result

    # ------------------------------------------------------------------- loss
    def _align(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target = pred.float(), target.float()
        if self.loss_type == 'mse':
            return F.mse_loss(pred, target)
        return (1 - F.cosine_similarity(pred, target, dim=1, eps=1e-8)).mean()

    def _zero(self) -> torch.Tensor:
        """0, connected to every trainable parameter."""
        params = [p for p in self.parameters() if p.requires_grad]
        return sum(p.sum() for p in params) * 0.0

    def loss(self, outs: Dict[str, Levels],
             presence: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The alignment loss on the fully present samples.

        Args:
            outs (dict[str, tuple[Tensor]]): Each modality's stream outputs.
            presence (Tensor, optional): ``(B, M)`` bool; ``None``: all present.

        Returns:
            dict[str, Tensor]: ``{'loss_cmpt_align': 0-dim tensor}``.
        """
        self._check(outs, presence)
        rows: Optional[torch.Tensor] = None
        if presence is not None:
            full = presence.to(torch.bool).all(dim=1)
            if not bool(full.any()):
                return {LOSS_KEY: self._zero()}
            if not bool(full.all()):
                rows = full.nonzero().squeeze(1)
        terms: List[torch.Tensor] = []
        for dst in self.modalities:
            for src in self.modalities:
                if src == dst:
                    continue
                predictors = self.predictors[self.pair_key(src, dst)]
                for level, predictor in enumerate(predictors):
                    feats, target = outs[src][level], outs[dst][level]
                    if rows is not None:
                        feats, target = feats[rows], target[rows]
                    pred = predictor(self._source(feats))
                    terms.append(self._align(pred, target.detach()))
        loss = torch.stack(terms).mean() * self.loss_weight
        # the gates learn from the task loss only; a zero keeps them in this
        # graph, so DDP finds a gradient for them in batches with nothing missing
        gates = sum(p.sum() for p in self.gates.parameters()) * 0.0
        return {LOSS_KEY: loss + gates}
