"""OGMGEHook: on-the-fly gradient modulation with generalisation enhancement."""
import logging
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..models.modality_outputs import SOURCES, check_source
from .balancing_hook import ModalityBalancingHook, training_epoch, unwrap
from .modulation import (BranchModulation, ParameterGradientModulation,
                         adaptive_optimizer_names)

RHO_MODES = ('original', 'minus_one')
PARAM_SETS = ('conv', 'matrix')
SOURCE_CHOICES = ('auto', ) + SOURCES


def ogm_ge_coefficients(
        score_a: float,
        score_b: float,
        alpha: float,
        rho_mode: str = 'original') -> Tuple[float, float, Optional[float]]:
    """OGM's coefficients ``(k_a, k_b, rho)`` from the two modalities' scores.

    ``rho = score_a / score_b``. If ``rho > 1`` (``a`` dominates), ``k_a = 1 -
    tanh(alpha * rho)`` and ``k_b = 1``; otherwise ``k_b = 1 - tanh(alpha / rho)``
    and ``k_a = 1`` (Peng et al.'s code; ``rho = 1`` exactly takes this branch).
    ``rho_mode='minus_one'`` uses ``tanh(alpha * (rho - 1))`` resp. ``tanh(alpha *
    (1 / rho - 1))`` instead, as several re-implementations do (no jump at
    ``rho = 1``).

    Args:
        score_a (float): Mean score of modality ``a``.
        score_b (float): Mean score of modality ``b``.
        alpha (float): Strength, > 0.
        rho_mode (str): ``'original'`` or ``'minus_one'``.

    Returns:
        tuple: ``(k_a, k_b, rho)``; ``(1.0, 1.0, None)`` when a score is not a
        positive finite number (no scoring unit: rho is undefined).
    """
    if rho_mode not in RHO_MODES:
        raise ValueError(f'OGM-GE: unknown rho_mode {rho_mode!r}; expected one of '
                         f'{RHO_MODES}')
    scores = (float(score_a), float(score_b))
    if not all(math.isfinite(s) and s > 0 for s in scores):
        return 1.0, 1.0, None
    rho = scores[0] / scores[1]
    shift = 1.0 if rho_mode == 'minus_one' else 0.0
    if rho > 1:
        return 1.0 - math.tanh(alpha * (rho - shift)), 1.0, rho
    return 1.0, 1.0 - math.tanh(alpha * (1.0 / rho - shift)), rho


def _noise_seed(seed: int, iteration: int) -> int:
    """One generator seed per (seed, iteration), the same on every rank."""
    # a large odd multiplier keeps the seeds of nearby (seed, iteration) apart
    return (int(seed) * 0x9E3779B97F4A7C15 + int(iteration)) % (2**63)


@HOOKS.register_module()
class OGMGEHook(ModalityBalancingHook):
    """OGM-GE (Peng et al., CVPR 2022) for two-modality detectors and segmentors.

    **Scores.** Every training iteration the model reports, for each modality
    ``m``, the sum over the batch's scoring units of the probability its unimodal
    prediction gives the ground-truth class, and the number of units
    (``modality_score_<m>``, ``modality_count_<m>`` in its loss dict: the contract
    of :class:`mwam_mm.models.ModalityOutputsMixin`, switched on with
    ``model.set_modality_scores(source)`` while the window is open: when training
    starts and whenever the window opens or closes). The hook sums both over the
    micro-batches of an optimizer step (gradient accumulation) and over the ranks
    (all-reduce) *before* computing anything, so every rank computes the same
    coefficients, and takes ``s_m = sum / count``. A step that AMP's loss scaler
    skips (non-finite gradients) keeps its scores for the next step.

    **Coefficients.** Exactly two modalities ``a``, ``b`` (the layout's order):
    ``rho = s_a / s_b``; see :func:`ogm_ge_coefficients`. ``rho_mode='original'``
    (default) is the authors' code, ``tanh(alpha * rho)``, with its jump at
    ``rho = 1`` (``k`` falls to ``1 - tanh(alpha)``); ``'minus_one'`` is
    ``tanh(alpha * (rho - 1))``. If a modality has no scoring unit on any rank
    (e.g. no positive anchor in the step's batches) or a score of 0, ``rho`` is
    undefined: both ``k`` stay 1 for that step (the GE noise is still added,
    as the original adds it to both modalities every step of the window).

    **Modulation** (:class:`mwam_mm.engine.modulation.ParameterGradientModulation`),
    in an optimizer step pre-hook, i.e. once per step, after DDP's all-reduce
    and clipping: ``g <- k_m * g + N(0, std(g))`` (``std`` before scaling; the
    noise only with ``ge=True``) for the selected weights of each modality's
    branch: ``params='conv'`` takes the 4-D weights (conv kernels) only, as the
    original; ``'matrix'`` every parameter of rank >= 2 (linear and attention
    weights, patch and position embeddings), for transformer streams. Norm
    layers, biases, the fusion, neck and heads are never touched. The noise
    comes from a generator seeded on every rank from ``(seed, iteration)``, so
    all ranks add the same noise and stay identical.

    **Window.** Modulation and noise run for ``begin <= epoch < end`` (or
    iterations with ``by_epoch=False``; ``end=None``: to the end); outside it
    the model computes no scores, nothing is scaled and no noise is added
    (``ogm_k_<m>`` is logged as 1). The original modulates epochs 0-50 of 100:
    ``window=(0, 50)`` for a run of 100 epochs.

    **Adaptive optimizers** (Adam, AdamW, ...) normalise each gradient by its
    running scale, so they largely cancel ``k``; the noise is not cancelled. A
    warning says so once.

    Logged every step: ``train/ogm_k_<m>``, ``train/ogm_rho``,
    ``train/ogm_score_<m>``, and ``train/grad_norm_<m>`` (after the
    modulation). The hook adds nothing to the model or the checkpoint.

    Args:
        alpha (float): Strength, > 0. Default 0.1, the smallest the authors used
            (VGGSound; 0.8 on CREMA-D): with the original ``rho`` the dominant
            branch is slowed by at least ``1 - tanh(alpha)`` at every step, even
            for modalities at parity, which is a mild 10% at 0.1 but 66% at 0.8;
            RGB-T cameras are both informative and their scores stay close, so
            a mild default, raised when the logged ``ogm_rho`` stays far from 1.
        rho_mode (str): ``'original'`` (default) or ``'minus_one'``.
        params (str): ``'conv'`` (default) or ``'matrix'``.
        ge (bool): Add the generalisation-enhancement noise. Default True.
        window (tuple): ``(begin, end)``, ``end`` exclusive or ``None``. Default
            ``(0, None)``: always.
        by_epoch (bool): ``window`` in epochs (default; with an iteration-based
            loop an epoch is a pass over the training dataloader) or iterations.
        source (str): Where the unimodal predictions come from: ``'auto'``
            (default), ``'aux'`` or ``'view'`` (see
            :mod:`mwam_mm.models.modality_outputs`).
        seed (int, optional): Seed of the noise; ``None`` (default): the
            runner's seed (``randomness.seed``, synchronised across ranks by
            mmengine), 0 if the runner has none.
        branches (dict, optional): ``{modality: module path}``; default: the
            backbone's ``modality_branches()``.
        log_grad_norm (bool): Log ``grad_norm_<m>``. Default True.
        modalities (list[dict], optional): The modality layout, for a model
            whose backbone has none.
    """

    def __init__(self,
                 alpha: float = 0.1,
                 rho_mode: str = 'original',
                 params: str = 'conv',
                 ge: bool = True,
                 window: Sequence[Optional[int]] = (0, None),
                 by_epoch: bool = True,
                 source: str = 'auto',
                 seed: Optional[int] = None,
                 branches: Optional[Dict[str, str]] = None,
                 log_grad_norm: bool = True,
                 modalities=None):
        super().__init__(branches, log_grad_norm, modalities)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f'OGMGEHook: alpha must be a number > 0, got {alpha!r} '
                             '(the authors use 0.1 to 0.8)')
        if rho_mode not in RHO_MODES:
            raise ValueError(f'OGMGEHook: rho_mode must be one of {RHO_MODES}, got '
                             f'{rho_mode!r}')
        if params not in PARAM_SETS:
            raise ValueError(
                f"OGMGEHook: params must be 'conv' (4-D weights) or 'matrix' "
                f'(every weight of rank >= 2), got {params!r}')
        if source not in SOURCE_CHOICES:
            raise ValueError(f'OGMGEHook: source must be one of {SOURCE_CHOICES}, '
                             f'got {source!r}')
        self.alpha = float(alpha)
        self.rho_mode = rho_mode
        self.params = params
        self.ge = bool(ge)
        self.window = self._parse_window(window)
        self.by_epoch = by_epoch
        self.source_arg = source
        self.seed = seed

        self.source: Optional[str] = None
        self.names: Tuple[str, str] = ()
        self.weights: Dict[str, float] = {}
        self.scores: Dict[str, float] = {}
        self.rho: Optional[float] = None
        self._pending: Optional[torch.Tensor] = None  # (2, 2): sums, counts
        self._iter = -1
        self._step_iter = -1  # the iteration whose step computed self.weights
        self._in_window = False
        self._recorded = False
        self._base_seed = 0
        self._generators: Dict[torch.device, torch.Generator] = {}
        self._previous_source = None

    @staticmethod
    def _parse_window(window) -> Tuple[int, Optional[int]]:
        try:
            begin, end = window
        except (TypeError, ValueError):
            raise ValueError('OGMGEHook: window must be (begin, end), end None for '
                             f'no end, got {window!r}') from None
        if not isinstance(begin, int) or begin < 0 or \
                (end is not None and not isinstance(end, int)):
            raise ValueError('OGMGEHook: window must be two integers (begin >= 0, '
                             f'end or None), got {window!r}')
        if end is not None and end <= begin:
            raise ValueError(
                f'OGMGEHook: window {tuple(window)!r} is empty (end <= begin): the '
                'hook would never modulate; give end > begin, or None for no end')
        return begin, end

    # ------------------------------------------------------------------ set-up
    def _selects(self, param: torch.Tensor) -> bool:
        return param.dim() == 4 if self.params == 'conv' else param.dim() >= 2

    def setup(self, runner) -> None:
        if len(self.branches) != 2:
            raise ValueError(
                'OGMGEHook: OGM-GE compares exactly two modalities (rho = s_a / '
                f's_b), the model has {len(self.branches)}: {list(self.branches)}; '
                'name two branches with branches=dict(...)')
        self.names = tuple(self.branches)
        self.source = check_source(self.source_arg, unwrap(runner.model), 'OGMGEHook')
        for name, branch in self.branches.items():
            if not any(
                    p.requires_grad and self._selects(p) for p in branch.parameters()):
                what = ('4-D (conv) weight'
                        if self.params == 'conv' else 'trainable weight of rank >= 2')
                hint = (" (a transformer stream? use params='matrix')"
                        if self.params == 'conv' else '')
                raise ValueError(f'OGMGEHook: branch {name!r} has no {what} to '
                                 f'modulate{hint}')

    def build_modulations(self, runner) -> Dict[str, BranchModulation]:
        return {
            'grad':
            ParameterGradientModulation(
                self.branches,
                self._weight,
                select=self._selects,
                noise=self._generator if self.ge else None)
        }

    def before_train(self, runner) -> None:
        super().before_train(runner)
        model = unwrap(runner.model)
        self._previous_source = model.modality_scores_source
        self._handles.append(
            model.register_forward_hook(self._record_scores, with_kwargs=True))
        seed = self.seed if self.seed is not None else getattr(runner, 'seed', None)
        self._base_seed = int(seed) if seed is not None else 0
        self._pending, self._step_iter = None, -1
        self._in_window = self._window_contains(runner)
        self._switch_scores(runner)
        self._warn_adaptive(runner)
        begin, end = self.window
        print_log(
            f'OGMGEHook: modalities {list(self.names)}, alpha {self.alpha}, '
            f'rho_mode {self.rho_mode!r}, params {self.params!r}, GE '
            f'{"on" if self.ge else "off"}, {"epochs" if self.by_epoch else "iters"}'
            f' [{begin}, {"end" if end is None else end}), scores from '
            f'{self.source!r}',
            logger='current')

    def _warn_adaptive(self, runner) -> None:
        adaptive = adaptive_optimizer_names(runner)
        if adaptive:
            print_log(
                f'OGMGEHook: the adaptive optimizer {adaptive[0]} normalises '
                'gradients by their running scale and so largely cancels the '
                "coefficient k (the GE noise is not cancelled); OGM-GE's authors "
                'use SGD',
                logger='current',
                level=logging.WARNING)

    # --------------------------------------------------------- each iteration
    def _window_contains(self, runner) -> bool:
        position = training_epoch(runner) if self.by_epoch else runner.iter
        begin, end = self.window
        return begin <= position and (end is None or position < end)

    def before_train_epoch(self, runner) -> None:
        self._in_window = self._window_contains(runner)
        self._switch_scores(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        super().before_train_iter(runner, batch_idx, data_batch)
        self._iter = runner.iter
        self._in_window = self._window_contains(runner)
        self._recorded = False
        # a no-op unless an iteration window (or an epoch of an iteration-based
        # loop) opens or closes right here
        self._switch_scores(runner)

    def _switch_scores(self, runner) -> None:
        """The model computes scores while the window is open, and only then
        (they cost a forward of each unimodal view)."""
        wanted = self.source if self._in_window else self._previous_source
        model = unwrap(runner.model)
        if model.modality_scores_source != wanted:
            model.set_modality_scores(wanted)

    def _record_scores(self, module: nn.Module, args, kwargs, output) -> None:
        if (not self._in_window or kwargs.get('mode') != 'loss' or not module.training
                or not isinstance(output, dict)):
            return
        keys = [
            f'modality_{kind}_{name}' for kind in ('score', 'count')
            for name in self.names
        ]
        missing = [k for k in keys if k not in output]
        if missing:
            raise KeyError(
                f'OGMGEHook: the loss dict of {type(module).__name__} has no '
                f'{missing} (it has {sorted(output)}); with modality_scores_source '
                f'set ({module.modality_scores_source!r}) the model must add '
                "'modality_score_<m>' and 'modality_count_<m>' (see "
                'mwam_mm.models.ModalityOutputsMixin)')
        values = torch.stack([
            torch.as_tensor(output[k]).detach().reshape(()).to('cpu', torch.float64)
            for k in keys
        ]).view(2, 2)
        self._pending = values if self._pending is None else self._pending + values
        self._recorded = True

    def _weight(self, name: str) -> Optional[float]:
        """``k`` of ``name`` at this step (``None`` outside the window); the first
        call of a step pools the scores and computes both coefficients."""
        if not self._in_window:
            return None
        if self._step_iter != self._iter:
            self._compute_step()
        return self.weights[name]

    def _compute_step(self) -> None:
        pooled = self._pending if self._pending is not None else torch.zeros(
            2, 2, dtype=torch.float64)
        # every rank reaches each optimizer step: sum the scores and counts of
        # all ranks before anything depends on them (a no-op without DDP)
        all_reduce(pooled, op='sum')
        sums, counts = pooled[0].tolist(), pooled[1].tolist()
        scores = [s / c if c > 0 else float('nan') for s, c in zip(sums, counts)]
        k_a, k_b, rho = ogm_ge_coefficients(scores[0], scores[1], self.alpha,
                                            self.rho_mode)
        self.scores = dict(zip(self.names, scores))
        self.weights = dict(zip(self.names, (k_a, k_b)))
        self.rho = rho
        self._pending = None
        self._step_iter = self._iter
        self._generators = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = self._generators.get(device)
        if generator is None:
            generator = torch.Generator(device=device)
            generator.manual_seed(_noise_seed(self._base_seed, self._step_iter))
            self._generators[device] = generator
        return generator

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        hub = runner.message_hub
        if not self._in_window:
            for name in self.names:
                hub.update_scalar(f'train/ogm_k_{name}', 1.0)
            return
        if not self._recorded:
            raise RuntimeError(
                "OGMGEHook: the model's forward with mode='loss' did not run in this "
                'training iteration (or returned no loss dict); OGM-GE reads '
                "'modality_score_<m>' and 'modality_count_<m>' from it")
        if self._step_iter != self._iter:
            return  # accumulating: the step comes later
        for name in self.names:
            hub.update_scalar(f'train/ogm_k_{name}', self.weights[name])
            if math.isfinite(self.scores[name]):
                hub.update_scalar(f'train/ogm_score_{name}', self.scores[name])
        if self.rho is not None:
            hub.update_scalar('train/ogm_rho', self.rho)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        self._in_window = False
        self._switch_scores(runner)
