"""MWAMHook: modality balancing with FRM-driven weights, during training only."""
import logging
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS

from ..frm import MWAMWeighting, frequency_ratio_metric

APPLY_MODES = ('grad', 'update', 'loss')
ADAPTIVE_OPTIMIZERS = ('Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam', 'Adagrad',
                       'Adadelta', 'RMSprop', 'SparseAdam', 'Adafactor', 'Lamb',
                       'Lion')
MAX_NONFINITE_WARNINGS = 10


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def _tensors(output) -> List[torch.Tensor]:
    """The tensors in a module's output (tensor, or nested tuple/list/dict)."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return []


def _module_names(model: nn.Module, max_depth: int = 3, limit: int = 60) -> str:
    names = [n for n, _ in model.named_modules() if n and n.count('.') < max_depth]
    shown = ', '.join(names[:limit])
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return shown + more


@HOOKS.register_module()
class MWAMHook(Hook):
    """Multimodal Weight Allocation Module (MWAM) as an mmengine hook.

    Each training iteration it computes the Frequency Ratio Metric (FRM) of every
    modality's input batch (the tensor the modality's branch receives), averages it
    across ranks, updates the FRM bank and computes one weight ``K_m`` per modality
    (see :class:`mwam_mm.frm.MWAMWeighting`). The weights then slow the dominant
    modality's branch and speed up the others, in one or more of these ways:

    - ``'grad'``: every gradient of a branch parameter is multiplied by ``K_m`` as it
      is produced (by scaling the gradient that reaches the branch's outputs), i.e.
      before accumulation, DDP reduction, clipping and the optimizer step. This is
      the public release's behaviour. Adaptive
      optimizers (Adam, AdamW, ...) largely cancel a gradient scale: a warning says so.
    - ``'update'``: the optimizer step of branch parameters is scaled,
      ``theta <- theta_old + K_m * (theta_new - theta_old)``, as in the paper's
      Algorithm 1; meaningful with any optimizer. With gradient accumulation the
      ``K_m`` of the accumulated iterations are averaged.
    - ``'loss'``: every loss the model returns whose key contains ``'loss'`` and ends
      with ``'_<modality>'`` (e.g. ``loss_cls_thermal``, from an auxiliary head fed only
      by that modality) is multiplied by ``K_m``. Other losses are untouched.
    - ``'hybrid'``: ``'grad'`` plus ``'loss'``; any list such as
      ``['update', 'loss']`` is accepted too.

    Nothing runs outside training iterations, and the hook adds no parameters or
    buffers to the model: the checkpoint is an ordinary model.

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
            (``patch_size``, ``band_size``, ``sigma``, ``mode``). Default: the
            paper's (8, 2, 1e-6, ``'paper'``).
        frm_source (str): ``'input'`` (default): FRM of the branch's input. Any
            other value names a submodule of each branch (e.g. ``'layer1'``) whose
            output is used instead (FRM of features, as the abstract puts it).
        per_channel (bool): Divide each modality's FRM by the channel count of the
            tensor it is computed on, so that a 1-channel thermal input is compared
            on equal terms with 3-channel RGB (the paper's setting has 3 channels for
            every modality). Default True.
    """

    priority = 'NORMAL'

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
                 per_channel: bool = True):
        self.apply = self._parse_apply(apply)
        self.branch_paths = dict(branches) if branches is not None else None
        self.weighting_cfg = dict(
            preset=preset, alpha=alpha, beta=beta, lam=lam, gamma=gamma,
            momentum=momentum, bank_init=bank_init, sigma=sigma)
        # validate the weighting arguments now, not at the first iteration
        MWAMWeighting(['a', 'b'], **self.weighting_cfg)
        self.frm_cfg = dict(frm or {})
        unknown = set(self.frm_cfg) - {'patch_size', 'band_size', 'sigma', 'mode'}
        if unknown:
            raise ValueError(f'MWAMHook: unknown frm option(s) {sorted(unknown)}; '
                             "expected 'patch_size', 'band_size', 'sigma', 'mode'")
        self.frm_source = frm_source
        self.per_channel = per_channel

        self.weighting: Optional[MWAMWeighting] = None
        self.branches: Dict[str, nn.Module] = {}
        self.frm_values: Dict[str, torch.Tensor] = {}
        self.weights: Optional[Dict[str, float]] = None
        self._pending_state: Optional[dict] = None
        self._handles: List = []
        self._active = False
        self._update_k_sum: Dict[str, float] = defaultdict(float)
        self._update_k_count = 0
        self._snapshots: Dict[str, List[torch.Tensor]] = {}
        self._nonfinite_warnings = 0

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
    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        self.branches = self._resolve_branches(model)
        names = list(self.branches)
        self.weighting = MWAMWeighting(names, **self.weighting_cfg)
        if self._pending_state is not None:
            self.weighting.load_state_dict(self._pending_state)
            self._pending_state = None
        self._install_frm_hooks()
        if 'grad' in self.apply:
            self._install_grad_hooks()
        if 'update' in self.apply:
            self._install_update_hooks(runner)
        if 'loss' in self.apply:
            self._handles.append(
                model.register_forward_hook(self._scale_losses, with_kwargs=True))
        self._warn_adaptive(runner)
        print_log(
            f'MWAMHook: modalities {names}, apply={list(self.apply)}, '
            f'K = {self.weighting.alpha} - {self.weighting.beta} * sigmoid('
            f'{self.weighting.lam} * (T - {self.weighting.gamma})), '
            f'FRM source {self.frm_source!r}', logger='current')

    def _resolve_branches(self, model: nn.Module) -> Dict[str, nn.Module]:
        if self.branch_paths is None:
            backbone = getattr(model, 'backbone', model)
            if not hasattr(backbone, 'modality_branches'):
                raise RuntimeError(
                    'MWAMHook: the model has no backbone with modality_branches() '
                    '(such as DualStreamBackbone); name the branches, e.g. '
                    "branches=dict(rgb='backbone.rgb_stream', thermal='backbone."
                    "thermal_stream'). Available modules: " + _module_names(model))
            branches = dict(backbone.modality_branches())
        else:
            branches = {}
            for name, path in self.branch_paths.items():
                try:
                    branches[name] = model.get_submodule(path)
                except AttributeError:
                    raise AttributeError(
                        f'MWAMHook: branch {name!r}: the model has no module '
                        f'{path!r}. Available modules: {_module_names(model)}'
                    ) from None
        if len(branches) < 2:
            raise ValueError(f'MWAMHook needs at least two modality branches, got '
                             f'{list(branches)}')
        seen = {}
        for name, module in branches.items():
            params = list(module.parameters())
            if not params:
                raise ValueError(f'MWAMHook: branch {name!r} has no parameters')
            for p in params:
                if id(p) in seen:
                    raise ValueError(
                        f'MWAMHook: branches {seen[id(p)]!r} and {name!r} share '
                        'parameters; MWAM needs one branch of its own per modality')
                seen[id(p)] = name
        return branches

    def _install_frm_hooks(self) -> None:
        for name, branch in self.branches.items():
            if self.frm_source == 'input':
                def pre_hook(module, args, name=name):
                    self._record(name, module, args[0])
                self._handles.append(branch.register_forward_pre_hook(pre_hook))
            else:
                try:
                    source = branch.get_submodule(self.frm_source)
                except AttributeError:
                    raise AttributeError(
                        f'MWAMHook: frm_source {self.frm_source!r} is not a module of '
                        f'branch {name!r}. Its modules: {_module_names(branch)}'
                    ) from None

                def fwd_hook(module, args, output, name=name, branch=branch):
                    if isinstance(output, (tuple, list)):
                        output = output[0]
                    self._record(name, branch, output)
                self._handles.append(source.register_forward_hook(fwd_hook))

    def _install_grad_hooks(self) -> None:
        # The gradient reaching a branch's parameters flows back only through its
        # outputs, so scaling the output gradients by K scales every parameter
        # gradient of the branch by exactly K (chain rule), with a few hook calls
        # per iteration instead of one per parameter.
        for name, branch in self.branches.items():
            def scale_outputs(module, args, output, name=name):
                if self._active and module.training:
                    for tensor in _tensors(output):
                        if tensor.requires_grad:
                            tensor.register_hook(
                                lambda g, name=name: self._scale_grad(g, name))
            self._handles.append(branch.register_forward_hook(scale_outputs))

    def _optimizers(self, runner) -> list:
        wrapper = runner.optim_wrapper
        wrappers = (wrapper.values()
                    if isinstance(wrapper, OptimWrapperDict) else [wrapper])
        return [w.optimizer for w in wrappers]

    def _install_update_hooks(self, runner) -> None:
        optimizers = self._optimizers(runner)
        owned = {id(p) for opt in optimizers for g in opt.param_groups
                 for p in g['params']}
        self._update_params = {
            name: [p for p in branch.parameters()
                   if p.requires_grad and id(p) in owned]
            for name, branch in self.branches.items()
        }
        for opt in optimizers:
            self._handles.append(opt.register_step_pre_hook(self._snapshot))
            self._handles.append(opt.register_step_post_hook(self._scale_update))

    def _warn_adaptive(self, runner) -> None:
        if 'grad' not in self.apply:
            return
        adaptive = [type(o).__name__ for o in self._optimizers(runner)
                    if type(o).__name__ in ADAPTIVE_OPTIMIZERS]
        if adaptive:
            print_log(
                f"MWAMHook: apply='grad' with the adaptive optimizer {adaptive[0]}, "
                'which normalises gradients by their running scale and so largely '
                "cancels a per-branch gradient weight; apply='update' scales the "
                'step itself', logger='current', level=logging.WARNING)

    # --------------------------------------------------------- each iteration
    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._active = True
        self.frm_values = {}
        self.weights = None

    def _record(self, name: str, module: nn.Module, tensor: torch.Tensor) -> None:
        # also skips re-runs of the forward by activation checkpointing
        if not self._active or not module.training or name in self.frm_values:
            return
        frm = frequency_ratio_metric(tensor, **self.frm_cfg)
        if self.per_channel:  # the channels FRM summed over: input or features
            frm = frm / tensor.shape[1]
        self.frm_values[name] = frm
        if len(self.frm_values) == len(self.branches):
            self._compute_weights()

    def _compute_weights(self) -> None:
        names = list(self.branches)
        values = torch.stack([self.frm_values[n] for n in names])
        # ranks average their FRM, so every rank computes the same K
        all_reduce(values, op='mean')  # in place; a no-op without distribution
        frm = dict(zip(names, values.tolist()))
        self.frm_values = dict(zip(names, values))
        self.weights = self.weighting.update(frm)
        nonfinite = [n for n in names if not torch.isfinite(values[names.index(n)])]
        if nonfinite and self._nonfinite_warnings < MAX_NONFINITE_WARNINGS:
            self._nonfinite_warnings += 1
            print_log(
                f'MWAMHook: non-finite FRM for {nonfinite} ({frm}); their weight is 1 '
                'this iteration and the bank keeps its value', logger='current',
                level=logging.WARNING)
        if 'update' in self.apply:  # averaged over accumulated micro-batches
            for n in names:
                self._update_k_sum[n] += self.weights[n]
            self._update_k_count += 1

    def _weight(self, name: str) -> Optional[float]:
        if not self._active or self.weights is None:
            return None
        return self.weights[name]

    def _scale_grad(self, grad: torch.Tensor, name: str):
        k = self._weight(name)
        return None if k is None else grad * k

    def _snapshot(self, optimizer, args, kwargs) -> None:
        self._snapshots = {
            n: [p.detach().clone() for p in params]
            for n, params in self._update_params.items()
        }

    def _scale_update(self, optimizer, args, kwargs) -> None:
        if self._update_k_count == 0:
            return
        with torch.no_grad():
            for name, params in self._update_params.items():
                olds = self._snapshots.get(name)
                if not params or olds is None:
                    continue
                k = self._update_k_sum[name] / self._update_k_count
                # theta = old + k * (theta - old) = theta + (k - 1) * (theta - old)
                delta = torch._foreach_sub(params, olds)
                torch._foreach_add_(params, delta, alpha=k - 1.0)
        self._snapshots = {}
        self._update_k_sum.clear()
        self._update_k_count = 0

    def _scale_losses(self, module, args, kwargs, output):
        if (not self._active or kwargs.get('mode') != 'loss'
                or not isinstance(output, dict) or self.weights is None):
            return None
        scaled, found = dict(output), []
        for key, value in output.items():
            if 'loss' not in key:
                continue
            for name in self.branches:
                if key.endswith('_' + name):
                    k = self.weights[name]
                    scaled[key] = ([v * k for v in value]
                                   if isinstance(value, (list, tuple)) else value * k)
                    found.append(key)
        if not found:
            raise KeyError(
                "MWAMHook with apply='loss' needs per-modality losses whose keys end "
                f"with '_<modality>' ({['_' + n for n in self.branches]}), e.g. from "
                f'auxiliary heads; the model returned {sorted(output)}')
        return scaled

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._active = False
        if self.weights is None:
            missing = [n for n in self.branches if n not in self.frm_values]
            raise RuntimeError(
                f'MWAMHook: no FRM for modalities {missing} in this iteration: their '
                'branches did not run in the forward pass')
        hub = runner.message_hub
        for name in self.branches:
            hub.update_scalar(f'train/mwam_frm_{name}',
                              float(self.frm_values[name]))
            hub.update_scalar(f'train/mwam_k_{name}', self.weights[name])

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._active = False

    # --------------------------------------------------------------- state
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.weighting is not None:
            checkpoint['mwam'] = self.weighting.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('mwam')
        if state is None:
            return
        if self.weighting is not None:
            self.weighting.load_state_dict(state)
        else:  # loaded before before_train (resume): applied there
            self._pending_state = state
