"""MWAMHook: modality balancing with FRM-driven weights, during training only."""
import logging
import math
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..frm import MWAMWeighting, frequency_ratio_metric
from ..frm.frequency_ratio import grid_offsets
from ..presence import presence_from_data_samples
from .balancing_hook import ModalityBalancingHook, module_names, resuming, unwrap
from .modulation import (BranchModulation, GradientModulation, LossModulation,
                         UpdateModulation, adaptive_optimizer_names)

APPLY_MODES = ('grad', 'update', 'loss')
#: FRM's patch grid in MWAMHook unless ``frm=dict(grid_offset=...)`` says otherwise
#: (see the class docstring and ``benchmarks/frm_grid_offset.py``)
DEFAULT_GRID_OFFSET = 'odd'


def odd_offset(patch_size: int) -> int:
    """An odd offset near half a patch (3 for 8x8 patches): off every grid of
    even period, the 8x8 JPEG blocks and their traces after 2x or 4x
    downscaling alike."""
    half = patch_size // 2 - 1
    return half if half % 2 == 1 else half + 1


FRM_OPTIONS = ('patch_size', 'band_size', 'sigma', 'mode', 'grid_offset')
MAX_NONFINITE_WARNINGS = 10
#: consecutive iterations in which a modality is blank in every sample before
#: MWAMHook warns that its camera looks dead (``dead_camera_iters``)
DEAD_CAMERA_ITERS = 20


def _two_valued(planes: torch.Tensor) -> torch.Tensor:
    """Per row of ``(N, C, L)``: every channel holds at most two values."""
    low, high = planes.aminmax(dim=2, keepdim=True)
    return ((planes == low) | (planes == high)).all(dim=2).all(dim=1)


def blank_samples(tensor: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the samples whose every channel is constant apart from one
    padding value (a black or mean frame, padded or not)."""
    planes = tensor.detach().flatten(2)  # (B, C, H*W)
    # a strided subsample rules out almost every real image at a fraction of the
    # cost; only the candidates left are checked in full
    blank = _two_valued(planes[:, :, ::53])
    if bool(blank.any()):
        blank[blank.clone()] = _two_valued(planes[blank])
    return blank


@HOOKS.register_module()
class MWAMHook(ModalityBalancingHook):
    """Multimodal Weight Allocation Module (MWAM) as an mmengine hook.

    Each training iteration it computes the Frequency Ratio Metric (FRM) of every
    modality's input batch (the tensor the modality's branch receives), averages it
    across ranks, updates the FRM bank and computes one weight ``K_m`` per modality
    (see :class:`mwam_mm.frm.MWAMWeighting`). The weights then slow the dominant
    modality's branch and speed up the others, in one or more of these ways:

    - ``'grad'``: every gradient of a branch parameter is multiplied by ``K_m`` as it
      is produced (a tensor hook per parameter: exact on multi-level streams, whose
      outputs feed each other), i.e. before accumulation, DDP reduction, AMP's
      unscaling, clipping and the optimizer step. This is the public release's
      behaviour. Adaptive optimizers (Adam, AdamW, ...) largely cancel a gradient
      scale: a warning says so.
    - ``'update'``: the optimizer step of branch parameters is scaled,
      ``theta <- theta_old + K_m * (theta_new - theta_old)``, as in the paper's
      Algorithm 1; meaningful with any optimizer. With gradient accumulation the
      ``K_m`` of the accumulated iterations are averaged.
    - ``'loss'``: every loss the model returns whose key contains ``'loss'`` and ends
      with ``'_<modality>'`` (e.g. ``loss_cls_thermal``, from an auxiliary head fed only
      by that modality) is multiplied by ``K_m``. Other losses are untouched.
    - ``'hybrid'``: ``'grad'`` plus ``'loss'``; any list such as
      ``['update', 'loss']`` is accepted too.

    **Which samples count.** A sample whose modality is known missing (its
    ``missing_modalities``, e.g. from feature-level modality dropout, read from
    the data samples the model's forward receives) or blanked
    (a constant image, apart from padding: a black frame has no high band, so the
    paper's FRM of it explodes) does not count in that modality's FRM. FRM (a sum
    over the batch) is then taken over the counted samples and scaled to the batch
    size, so batches with different numbers of counted samples compare. A batch
    in which a modality has no counted sample leaves its bank and its weight as
    they were. While only one modality has ever been counted (the other's camera
    blank from the start), every weight is 1: there is nothing to balance it
    against (see :meth:`mwam_mm.frm.MWAMWeighting.update`). A modality blank in
    every sample of ``dead_camera_iters`` consecutive iterations (on all ranks)
    is reported once, by name: a dead camera or an empty folder in the training
    data.

    Nothing runs outside training iterations, and the hook adds no parameters or
    buffers to the model: the checkpoint is an ordinary model. The weights are
    applied by the shared modulations of :mod:`mwam_mm.engine.modulation`; this
    hook keeps FRM, the bank, the logging and its state. The bank and the last
    weights are saved in the checkpoint (``'mwam'``) and restored when the run is
    resumed (``resume=True``), not for ``load_from``, which starts a new run (as
    mmengine's ``EMAHook``).

    Args:
        branches (dict, optional): ``{modality: module path}`` of each modality's own
            branch, relative to the model (e.g. ``'backbone.streams.rgb'``). Defaults
            to the branches of the backbone's ``modality_branches()`` (as
            :class:`mwam_mm.models.DualStreamBackbone` provides).
        apply (str | Sequence[str]): ``'grad'`` (default), ``'update'``, ``'loss'``,
            ``'hybrid'``, or a list of modes.
        preset (str): ``'paper'`` (alpha 1.5, beta 1, lambda 6, gamma 0.7; default)
            or ``'release'`` (1.5, 1, 10, 1).
        alpha, beta, lam, gamma (float, optional): Override the preset.
        momentum (float): Bank EMA factor. Defaults to 0.5.
        bank_init (str): ``'first'`` (paper; default) or ``'soft'`` (release).
        sigma (float): Stabiliser of the relative preference ``T_m``. Default 1e-6.
        frm (dict): Keyword arguments of :func:`mwam_mm.frequency_ratio_metric`
            (``patch_size``, ``band_size``, ``sigma``, ``mode``, ``grid_offset``).
            Default: the paper's (8, 2, 1e-6, ``'paper'``) with
            ``grid_offset='odd'``: the patch grid starts 3 rows and 3 columns
            in (for 8x8 patches; an odd offset near half a patch), so that it
            does not sit on a JPEG file's 8x8 blocks (whose high band is
            quantisation residue), nor on their 4-px traces after a 2x
            downscale (LLVIP's configs). ``grid_offset=0`` (or ``'paper'``)
            is the paper's grid; an int or a pair fixes another; ``'random'``
            draws ``(oy, ox)`` in ``[0, patch_size)^2`` every iteration (from
            the run's seed and the iteration: the same on every rank and
            after a resume). Measured in ``benchmarks/frm_grid_offset.py``.
        frm_source (str): ``'input'`` (default): FRM of the branch's input. Any
            other value names a submodule of each branch (e.g. ``'layer1'``) whose
            output is used instead (FRM of features, as the abstract puts it).
        per_channel (bool): Divide each modality's FRM by the channel count of the
            tensor it is computed on, so that a 1-channel thermal input is compared
            on equal terms with 3-channel RGB (the paper's setting has 3 channels for
            every modality). Default True.
        log_grad_norm (bool): Log ``grad_norm_<modality>`` every iteration (see
            :class:`ModalityBalancingHook`). Default True.
        modalities (list[dict], optional): The modality layout, for a model whose
            backbone has none. Branch names must be its modality names.
        swap_weights (bool): Analysis control, not a method: with two
            branches, each gets the other's weight (the FRM dynamics with the
            roles reversed). Default False.
        dead_camera_iters (int): Warn once, naming the modality, when it was
            blank (a constant frame) in every sample of this many consecutive
            iterations. Default 20.
    """

    def __init__(self,
                 branches: Optional[Dict[str, str]] = None,
                 apply: Union[str, Sequence[str]] = 'grad',
                 preset: str = 'paper',
                 alpha: Optional[float] = None,
                 beta: Optional[float] = None,
                 lam: Optional[float] = None,
                 gamma: Optional[float] = None,
                 momentum: float = 0.5,
                 bank_init: str = 'first',
                 sigma: float = 1e-6,
                 frm: Optional[dict] = None,
                 frm_source: str = 'input',
                 per_channel: bool = True,
                 log_grad_norm: bool = True,
                 modalities=None,
                 swap_weights: bool = False,
                 dead_camera_iters: int = DEAD_CAMERA_ITERS):
        super().__init__(branches, log_grad_norm, modalities)
        if isinstance(dead_camera_iters, bool) or not isinstance(
                dead_camera_iters, int) or dead_camera_iters < 1:
            raise ValueError('MWAMHook: dead_camera_iters must be an int >= 1, got '
                             f'{dead_camera_iters!r}')
        self.dead_camera_iters = dead_camera_iters
        self.apply = self._parse_apply(apply)
        self.weighting_cfg = dict(
            preset=preset,
            alpha=alpha,
            beta=beta,
            lam=lam,
            gamma=gamma,
            momentum=momentum,
            bank_init=bank_init,
            sigma=sigma)
        # validate the weighting arguments now, not at the first iteration
        MWAMWeighting(['a', 'b'], **self.weighting_cfg)
        self.frm_cfg = dict(frm or {})
        unknown = set(self.frm_cfg) - set(FRM_OPTIONS)
        if unknown:
            raise ValueError(f'MWAMHook: unknown frm option(s) {sorted(unknown)}; '
                             f'expected some of {FRM_OPTIONS}')
        self.grid_offset = self.frm_cfg.pop('grid_offset', DEFAULT_GRID_OFFSET)
        patch_size = int(self.frm_cfg.get('patch_size', 8))
        if self.grid_offset == 'paper':
            self.grid_offset = 0
        elif self.grid_offset == 'odd':
            self.grid_offset = odd_offset(patch_size)
        if self.grid_offset != 'random':
            try:
                self.grid_offset = grid_offsets(self.grid_offset, patch_size)
            except ValueError as error:
                raise ValueError(f'MWAMHook: frm grid_offset: {error}; or '
                                 "'odd' (default), 'random' (a new offset every "
                                 "iteration) or 'paper' "
                                 '(0, the paper\'s grid)') from None
        self._patch_size = patch_size
        self._offset = (0, 0)
        self.swap_weights = bool(swap_weights)
        self.frm_source = frm_source
        self.per_channel = per_channel

        self.weighting: Optional[MWAMWeighting] = None
        self.frm_values: Dict[str, torch.Tensor] = {}
        self.frm_counts: Dict[str, torch.Tensor] = {}
        self.weights: Optional[Dict[str, float]] = None
        self.last_weights: Dict[str, float] = {}
        self._recording = False
        self._presence: Optional[torch.Tensor] = None  # of the batch in training
        self._nonfinite_warnings = 0
        self.frm_blanks: Dict[str, int] = {}
        self._blank_streak: Dict[str, int] = {}  # iterations blank everywhere
        self._reported_dead: set = set()

    @staticmethod
    def _parse_apply(apply) -> tuple:
        if apply == 'hybrid':
            apply = ('grad', 'loss')
        modes = (apply, ) if isinstance(apply, str) else tuple(apply)
        bad = [m for m in modes if m not in APPLY_MODES]
        if not modes or bad:
            raise ValueError(f'MWAMHook: apply must be one of {APPLY_MODES}, '
                             f"'hybrid' or a list of them, got {apply!r}")
        if 'grad' in modes and 'update' in modes:
            raise ValueError("MWAMHook: 'grad' and 'update' scale the same step "
                             'twice; choose one of them')
        return modes

    # ------------------------------------------------------------------ set-up
    def setup(self, runner) -> None:
        if self.swap_weights and len(self.branches) != 2:
            raise ValueError('MWAMHook: swap_weights needs exactly two branches, got '
                             f'{list(self.branches)}')
        self.weighting = MWAMWeighting(list(self.branches), **self.weighting_cfg)
        self.last_weights = {}
        self._modality_index = {n: self.layout.names.index(n) for n in self.branches}
        self._input_channels = ({
            n: self.layout[n].channels
            for n in self.branches
        } if self.frm_source == 'input' else {})

    def build_modulations(self, runner) -> Dict[str, BranchModulation]:
        built = {}
        if 'grad' in self.apply:
            built['grad'] = GradientModulation(self.branches, self._weight)
        if 'update' in self.apply:
            built['update'] = UpdateModulation(self.branches)
        if 'loss' in self.apply:
            built['loss'] = LossModulation(self.branches, self._weight, 'MWAMHook')
        return built

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._install_frm_hooks(unwrap(runner.model))
        self._warn_adaptive(runner)
        print_log(
            f'MWAMHook: modalities {list(self.branches)}, apply='
            f'{list(self.apply)}, K = {self.weighting.alpha} - '
            f'{self.weighting.beta} * sigmoid({self.weighting.lam} * (T - '
            f'{self.weighting.gamma})), FRM source {self.frm_source!r}',
            logger='current')

    def _install_frm_hooks(self, model: nn.Module) -> None:

        def read_presence(module, args, kwargs):
            # the samples as the model's forward gets them: after the data
            # preprocessor, whose feature-level modality dropout marks them
            if self._recording and module.training and kwargs.get('mode') == 'loss':
                samples = kwargs.get('data_samples', args[1] if len(args) > 1 else None)
                self._presence = presence_from_data_samples(samples, self.layout)

        self._handles.append(
            model.register_forward_pre_hook(read_presence, with_kwargs=True))
        for name, branch in self.branches.items():
            if self.frm_source == 'input':

                def pre_hook(module, args, name=name):
                    self._record(name, module, args[0])

                self._handles.append(branch.register_forward_pre_hook(pre_hook))
                continue
            try:
                source = branch.get_submodule(self.frm_source)
            except AttributeError:
                raise AttributeError(
                    f'MWAMHook: frm_source {self.frm_source!r} is not a module of '
                    f'branch {name!r}. Its modules: {module_names(branch)}') from None

            def fwd_hook(module, args, output, name=name, branch=branch):
                if isinstance(output, (tuple, list)):
                    output = output[0]
                self._record(name, branch, output)

            self._handles.append(source.register_forward_hook(fwd_hook))

    def _warn_adaptive(self, runner) -> None:
        if 'grad' not in self.apply:
            return
        adaptive = adaptive_optimizer_names(runner)
        if adaptive:
            print_log(
                f"MWAMHook: apply='grad' with the adaptive optimizer {adaptive[0]}, "
                'which normalises gradients by their running scale and so largely '
                "cancels a per-branch gradient weight; apply='update' scales the "
                'step itself',
                logger='current',
                level=logging.WARNING)

    # --------------------------------------------------------- each iteration
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        super().before_train_iter(runner, batch_idx, data_batch)
        self._offset = self._iteration_offset(runner)
        self._recording = True
        self._presence = None
        self.frm_values, self.frm_counts, self.frm_blanks = {}, {}, {}
        self.weights = None

    def _iteration_offset(self, runner) -> tuple:
        if self.grid_offset != 'random':
            return self.grid_offset
        # from the seed and the iteration only: the same on every rank, and the
        # same after a resume
        seed = getattr(runner, 'seed', None) or 0
        generator = torch.Generator().manual_seed(
            (int(seed) * 1_000_003 + int(getattr(runner, "iter", 0))) % (2**63))
        oy, ox = torch.randint(self._patch_size, (2, ), generator=generator).tolist()
        return oy, ox

    def _counted_samples(self, name: str, tensor: torch.Tensor):
        """Samples that count in ``name``'s FRM (present and not blanked), and
        the number of present samples that are blank."""
        blank = blank_samples(tensor)
        present = torch.ones_like(blank)
        presence = self._presence
        if presence is not None and presence.shape[0] == tensor.shape[0]:
            present = presence[:, self._modality_index[name]].to(blank.device)
        return present & ~blank, int((present & blank).sum())

    def _record(self, name: str, module: nn.Module, tensor: torch.Tensor) -> None:
        # also skips re-runs of the forward by activation checkpointing
        if (not self._recording or not module.training or name in self.frm_values):
            return
        self._check_branch_input(name, tensor)
        counted, blanks = self._counted_samples(name, tensor)
        count = int(counted.sum())
        self.frm_blanks[name] = blanks
        if count == 0:
            frm = torch.zeros((), dtype=torch.float64, device=tensor.device)
        else:
            frm = frequency_ratio_metric(
                tensor if count == tensor.shape[0] else tensor[counted],
                grid_offset=self._offset,
                **self.frm_cfg)
            if self.frm_cfg.get('mode', 'paper') == 'paper':
                frm = frm * (tensor.shape[0] / count)  # a sum over the batch
            if self.per_channel:  # the channels FRM summed over: input or features
                frm = frm / tensor.shape[1]
        self.frm_values[name] = frm
        self.frm_counts[name] = count
        if len(self.frm_values) == len(self.branches):
            self._compute_weights()

    def _check_branch_input(self, name: str, tensor: torch.Tensor) -> None:
        expected = self._input_channels.get(name)
        if expected is not None and tensor.shape[1] != expected:
            raise ValueError(
                f'MWAMHook: branch {name!r} receives {tensor.shape[1]} channels, '
                f'but modality {name!r} has {expected} in the layout: the branch '
                'must be the whole stream of that modality (its input the '
                "modality's image), not a later stage")
        if tensor.ndim != 4:
            return  # frequency_ratio_metric names the shape it expects
        h, w = tensor.shape[2:]
        oy, ox = self._offset
        p = self._patch_size
        if h - oy < p or w - ox < p:
            where = ('input' if self.frm_source == 'input' else
                     f'frm_source {self.frm_source!r} output')
            raise ValueError(
                f'MWAMHook: the FRM {where} of branch {name!r} is {h}x{w}, smaller '
                f'than one frm.patch_size={p} patch after the grid offset '
                f'{(oy, ox)}; give MWAMHook(frm=dict(patch_size=...)) a smaller '
                'patch (and band_size <= patch_size / 2), frm=dict(grid_offset=0), '
                "or frm_source='input'")

    def _compute_weights(self) -> None:
        names = list(self.branches)
        counts = torch.tensor([float(self.frm_counts[n]) for n in names],
                              dtype=torch.float64)
        blanks = torch.tensor([float(self.frm_blanks.get(n, 0)) for n in names],
                              dtype=torch.float64)
        values = torch.stack([self.frm_values[n].cpu() for n in names])
        # ranks pool their FRM weighted by their counted samples, so every rank
        # computes the same K (a no-op without distribution)
        pooled = torch.stack([values * counts, counts, blanks])
        all_reduce(pooled, op='sum')
        self._watch_dead_cameras(names, pooled[1].tolist(), pooled[2].tolist())
        values = torch.where(pooled[1] > 0, pooled[0] / pooled[1].clamp(min=1),
                             torch.full_like(pooled[0], float('nan')))
        absent = [n for n, c in zip(names, pooled[1].tolist()) if c == 0]
        frm = dict(zip(names, values.tolist()))
        self.frm_values = dict(zip(names, values))
        weights = self.weighting.update(frm)  # no FRM: the bank keeps its value
        for n in absent:  # and the weight stays as it was
            weights[n] = self.last_weights.get(n, 1.0)
        self.last_weights = dict(weights)
        if self.swap_weights:
            first, second = names
            weights = {first: weights[second], second: weights[first]}
        self.weights = weights
        nonfinite = [n for n in names if n not in absent and not math.isfinite(frm[n])]
        if nonfinite and self._nonfinite_warnings < MAX_NONFINITE_WARNINGS:
            self._nonfinite_warnings += 1
            print_log(
                f'MWAMHook: non-finite FRM for {nonfinite} ({frm}); their weight is 1 '
                'this iteration and the bank keeps its value',
                logger='current',
                level=logging.WARNING)
        if 'update' in self.modulations:  # averaged over accumulated micro-batches
            self.modulations['update'].record(self.weights)

    def _watch_dead_cameras(self, names, counted, blanks) -> None:
        # a modality that is blank wherever it is present, iteration after
        # iteration, is not dropout: its camera (or folder) gives no image
        for name, n_counted, n_blank in zip(names, counted, blanks):
            if n_counted == 0 and n_blank > 0:
                self._blank_streak[name] = self._blank_streak.get(name, 0) + 1
            else:
                self._blank_streak[name] = 0
            if (self._blank_streak[name] >= self.dead_camera_iters
                    and name not in self._reported_dead):
                self._reported_dead.add(name)
                print_log(
                    f'MWAMHook: modality {name!r} was blank (a constant frame) in '
                    f'every sample of the last {self._blank_streak[name]} '
                    'iterations: is its camera dead, or its image folder wrong? '
                    f'MWAM cannot measure {name!r} (its weight stays 1, and the '
                    'other modalities are not balanced against it)',
                    logger='current',
                    level=logging.WARNING)

    def _weight(self, name: str) -> Optional[float]:
        return None if self.weights is None else self.weights[name]

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self._recording = False
        if self.weights is None:
            missing = [n for n in self.branches if n not in self.frm_values]
            raise RuntimeError(
                f'MWAMHook: no FRM for modalities {missing} in this iteration: their '
                'branches did not run in the forward pass')
        hub = runner.message_hub
        for name in self.branches:
            hub.update_scalar(f'train/mwam_frm_{name}', float(self.frm_values[name]))
            hub.update_scalar(f'train/mwam_k_{name}', self.weights[name])

    def after_train(self, runner) -> None:
        super().after_train(runner)
        self._recording = False

    # --------------------------------------------------------------- state
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.weighting is not None:
            checkpoint['mwam'] = dict(
                self.weighting.state_dict(), last_weights=dict(self.last_weights))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('mwam')
        if state is None:
            return
        if not resuming(runner):
            # load_from starts a new run (fine-tuning, maybe on other data): its
            # FRM bank starts empty, as mmengine's EMAHook restores only on resume
            print_log(
                'MWAMHook: the loaded checkpoint has an FRM bank; it is not '
                'restored (load_from starts a new run; resume=True continues one)',
                logger='current')
            return
        if self.weighting is None:
            raise RuntimeError(
                'MWAMHook: a checkpoint was loaded before the hook\'s before_run; '
                'the runner calls before_run first (Runner.train/val/test)')
        state = dict(state)
        self.last_weights = {
            n: float(k)
            for n, k in state.pop('last_weights', {}).items()
        }
        self.weighting.load_state_dict(state)
