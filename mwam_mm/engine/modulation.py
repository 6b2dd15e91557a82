"""One mechanism for every balancing method: apply a per-branch weight.

MWAM, OGM-GE, RSC-MD and BTW all multiply something of each modality's branch by a
weight during training: its gradients, its optimizer updates, its losses. Each way
of applying a weight is one small class here with ``install(runner)`` and
``remove()``; a balancing hook computes the weights, hands the modulation a
``weight_of(name)`` callable that returns the current weight of branch ``name`` (or
``None``: leave it unscaled), and sets ``active`` for the duration of each training
iteration: nothing is scaled outside one.

mmengine has no hook point between ``backward`` and ``optimizer.step``, so:

- :class:`GradientModulation` scales the gradient flowing back into each branch
  where its outputs leave it (each output once), so that every parameter gradient
  of the branch is scaled exactly, inside backward: before accumulation, DDP's
  all-reduce and clipping.
- :class:`UpdateModulation` scales each branch's optimizer step with step pre/post
  hooks (``theta <- theta_old + k (theta_new - theta_old)``), meaningful with
  Adam-type optimizers, which cancel a constant gradient scale.
- :class:`LossModulation` scales the losses whose key ends with ``_<modality>``
  (auxiliary per-modality heads) in a forward hook on the model.
- :class:`ParameterGradientModulation` scales selected parameter gradients of
  each branch (OGM-GE: conv kernels only), optionally adding Gaussian noise, in
  an optimizer step pre-hook: after DDP's all-reduce and clipping.
- :class:`BranchGradientNorms` measures, not modulates: the norm of each branch's
  gradient as the optimizer receives it.
"""
from collections import defaultdict
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapperDict

WeightOf = Callable[[str], Optional[float]]

ADAPTIVE_OPTIMIZERS = ('Adam', 'AdamW', 'Adamax', 'NAdam', 'RAdam', 'Adagrad',
                       'Adadelta', 'RMSprop', 'SparseAdam', 'Adafactor', 'Lamb', 'Lion')


def adaptive_optimizer_names(runner) -> List[str]:
    """The runner's optimizers that normalise gradients by their running scale
    (and so largely cancel a constant gradient weight)."""
    return [
        type(o).__name__ for o in optimizers_of(runner)
        if type(o).__name__ in ADAPTIVE_OPTIMIZERS
    ]


def optimizers_of(runner) -> list:
    """The torch optimizers behind the runner's optimizer wrapper(s)."""
    wrapper = runner.optim_wrapper
    wrappers = (
        wrapper.values() if isinstance(wrapper, OptimWrapperDict) else [wrapper])
    return [w.optimizer for w in wrappers]


def scale_value(value, k: float):
    """A loss value (tensor or list of tensors) times ``k``."""
    if isinstance(value, (list, tuple)):
        return [v * k for v in value]
    return value * k


class BranchModulation:
    """Base: something applied to each modality branch; ``install``/``remove``.

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``.
    """

    def __init__(self, branches: Dict[str, nn.Module]):
        self.branches = dict(branches)
        self.active = False
        self._handles: List = []

    def install(self, runner) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class _ScaleOnTheWayBack(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``weight()``, read
    then (``None`` or 1: unchanged)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: Callable[[], Optional[float]]):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        k = ctx.weight()
        return (grad if k is None or k == 1.0 else grad * k), None


def map_tensors(output, fn):
    """``output`` (tensor, or nested tuple/list/dict) with ``fn`` applied to every
    tensor, the structure kept."""
    if isinstance(output, torch.Tensor):
        return fn(output)
    if isinstance(output, dict):
        return type(output)((k, map_tensors(v, fn)) for k, v in output.items())
    if isinstance(output, (list, tuple)):
        mapped = [map_tensors(item, fn) for item in output]
        return type(output)(*mapped) if hasattr(output, '_fields') else \
            type(output)(mapped)
    return output


class GradientModulation(BranchModulation):
    """Multiply every gradient of branch ``m``'s parameters by ``weight_of(m)``.

    The branch's outputs are handed to the rest of the model through an identity
    whose backward multiplies by the weight (a forward hook replaces them). The
    branch's own uses of its outputs (a ResNet's C2 feeding layer2, which gives
    C3 ...) happened inside its forward, on the unwrapped tensors, so every path
    from a branch parameter to the loss leaves the branch exactly once, through
    one wrapped output: every parameter gradient of the branch is exactly ``k``
    times what it would be, and nothing outside the branch changes. (A hook on
    the gradient of each *output* tensor is not the same on a multi-level
    stream: an early stage would get ``k`` once per level it feeds.) This needs
    the branch to be called as a module and to give the rest of the model its
    features only through what its forward returns; a branch whose parameters
    are used elsewhere is refused when the branches are resolved.

    Order within a training step: backward (each micro-batch's gradient times
    its own ``k``) -> accumulation -> DDP's all-reduce -> AMP's unscaling (the
    loss scale cancels; ``k`` stays) -> gradient clipping (of the scaled
    gradients) -> the optimizer step, whose weight decay is not scaled (as the
    public release: only the loss gradient is).

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``.
        weight_of (callable): ``name -> weight or None``; read during backward,
            so the weights may be computed after the branch's forward.
    """

    def __init__(self, branches: Dict[str, nn.Module], weight_of: WeightOf):
        super().__init__(branches)
        self.weight_of = weight_of

    def install(self, runner=None) -> None:
        for name, branch in self.branches.items():

            def wrap_outputs(module, args, output, name=name):
                if not (self.active and module.training):
                    return None

                def weight():
                    return self.weight_of(name) if self.active else None

                return map_tensors(
                    output, lambda t: _ScaleOnTheWayBack.apply(t, weight)
                    if t.requires_grad else t)

            self._handles.append(branch.register_forward_hook(wrap_outputs))


class UpdateModulation(BranchModulation):
    """Scale branch ``m``'s optimizer step by its weight.

    The owner calls :meth:`record` once per training iteration with the
    iteration's weights; with gradient accumulation the weights of the
    accumulated iterations are averaged at the step.

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``.
    """

    def __init__(self, branches: Dict[str, nn.Module]):
        super().__init__(branches)
        self.k_sum: Dict[str, float] = defaultdict(float)
        self.k_count = 0
        self._params: Dict[str, List[torch.Tensor]] = {}
        self._snapshots: Dict[str, List[torch.Tensor]] = {}

    def record(self, weights: Dict[str, float]) -> None:
        for name in self.branches:
            self.k_sum[name] += weights[name]
        self.k_count += 1

    def install(self, runner) -> None:
        optimizers = optimizers_of(runner)
        owned = {
            id(p)
            for opt in optimizers
            for g in opt.param_groups
            for p in g['params']
        }
        self._params = {
            name:
            [p for p in branch.parameters() if p.requires_grad and id(p) in owned]
            for name, branch in self.branches.items()
        }
        for opt in optimizers:
            self._handles.append(opt.register_step_pre_hook(self.snapshot))
            self._handles.append(opt.register_step_post_hook(self.scale_update))

    def snapshot(self, optimizer, args, kwargs) -> None:
        self._snapshots = {
            n: [p.detach().clone() for p in params]
            for n, params in self._params.items()
        }

    def scale_update(self, optimizer, args, kwargs) -> None:
        if self.k_count == 0:
            return
        with torch.no_grad():
            for name, params in self._params.items():
                olds = self._snapshots.get(name)
                if not params or olds is None:
                    continue
                k = self.k_sum[name] / self.k_count
                # theta = old + k * (theta - old) = theta + (k - 1) * (theta - old)
                delta = torch._foreach_sub(params, olds)
                torch._foreach_add_(params, delta, alpha=k - 1.0)
        self._snapshots = {}
        self.k_sum.clear()
        self.k_count = 0


class LossModulation(BranchModulation):
    """Multiply the model's losses ``*loss*_<modality>`` by that modality's weight.

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``; only the
            names are used.
        weight_of (callable): ``name -> weight or None``.
        owner (str): Name used in error messages.
    """

    def __init__(self,
                 branches: Dict[str, nn.Module],
                 weight_of: WeightOf,
                 owner: str = 'LossModulation'):
        super().__init__(branches)
        self.weight_of = weight_of
        self.owner = owner

    def install(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else \
            runner.model
        self._handles.append(
            model.register_forward_hook(self._scale_losses, with_kwargs=True))

    def _scale_losses(self, module, args, kwargs, output):
        if (not self.active or kwargs.get('mode') != 'loss'
                or not isinstance(output, dict)):
            return None
        weights = {n: self.weight_of(n) for n in self.branches}
        if any(k is None for k in weights.values()):
            return None
        scaled, found = dict(output), []
        for key, value in output.items():
            if 'loss' not in key:
                continue
            for name, k in weights.items():
                if key.endswith('_' + name):
                    scaled[key] = scale_value(value, k)
                    found.append(key)
        if not found:
            raise KeyError(
                f"{self.owner} with apply='loss' needs per-modality losses whose "
                f"keys end with '_<modality>' ({['_' + n for n in self.branches]}),"
                ' e.g. from auxiliary heads; the model returned '
                f'{sorted(output)}')
        return scaled


class BranchGradientNorms(BranchModulation):
    """The L2 norm of each branch's parameter gradients at every optimizer step.

    Measured in an optimizer step pre-hook: after any gradient modulation, DDP's
    all-reduce (so every rank reads the same) and clipping.

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``.
    """

    def __init__(self, branches: Dict[str, nn.Module]):
        super().__init__(branches)
        self.norms: Dict[str, float] = {}
        self._params: Dict[str, List[torch.Tensor]] = {}

    def install(self, runner) -> None:
        self._params = {
            name: [p for p in branch.parameters() if p.requires_grad]
            for name, branch in self.branches.items()
        }
        for opt in optimizers_of(runner):
            self._handles.append(opt.register_step_pre_hook(self.measure))

    @torch.no_grad()
    def measure(self, optimizer=None, args=None, kwargs=None) -> None:
        names, norms = [], []
        for name, params in self._params.items():
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                names.append(name)
                norms.append(
                    torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
        if norms:  # one host sync for all branches
            self.norms = dict(zip(names, torch.stack(norms).tolist()))


class ParameterGradientModulation(BranchModulation):
    """At each optimizer step, ``g <- k_m * g (+ N(0, std(g)))`` for the selected
    parameters of branch ``m`` (OGM-GE's modulation and generalisation noise).

    Applied in an optimizer step pre-hook, to the gradients the optimizer is
    about to use: after backward, gradient accumulation, DDP's all-reduce, AMP's
    unscaling and clipping, so that every rank starts from the same gradients.
    At each step ``weight_of`` is called once per branch, on every rank, before
    any gradient is touched: the owner may compute the weights there (e.g. from
    statistics it all-reduces first).

    Args:
        branches (dict[str, nn.Module]): ``{modality: branch module}``.
        weight_of (callable): ``name -> weight or None``; ``None`` leaves that
            branch's gradients alone, noise included.
        select (callable, optional): ``parameter -> bool``: which parameters of
            a branch are modulated. Default: all of them.
        noise (callable, optional): ``device -> torch.Generator``. When given,
            every modulated gradient also gets noise ``N(0, std(g))``, ``std``
            taken before scaling (unbiased; 0 for a one-element tensor), drawn
            from the generator returned for the gradient's device: a generator
            seeded alike on every rank gives every rank the same noise. The
            draws follow the branches' and parameters' order. ``None``: no noise.
    """

    def __init__(self,
                 branches: Dict[str, nn.Module],
                 weight_of: WeightOf,
                 select: Optional[Callable[[torch.Tensor], bool]] = None,
                 noise: Optional[Callable[[torch.device], torch.Generator]] = None):
        super().__init__(branches)
        self.weight_of = weight_of
        self.select = select or (lambda param: True)
        self.noise = noise
        self.params: Dict[str, List[torch.Tensor]] = {}

    def selected(self) -> Dict[str, List[torch.Tensor]]:
        """``{modality: [parameter]}``: the trainable parameters selected."""
        return {
            name:
            [p for p in branch.parameters() if p.requires_grad and self.select(p)]
            for name, branch in self.branches.items()
        }

    def install(self, runner) -> None:
        selected = self.selected()
        self.params = {name: [] for name in selected}
        for opt in optimizers_of(runner):
            owned = {id(p) for g in opt.param_groups for p in g['params']}
            # each optimizer modulates the parameters it steps
            params = {
                name: [p for p in params if id(p) in owned]
                for name, params in selected.items()
            }
            for name, own in params.items():
                self.params[name] += own

            def pre_hook(optimizer, args, kwargs, params=params):
                self.apply(params)

            self._handles.append(opt.register_step_pre_hook(pre_hook))

    @torch.no_grad()
    def apply(self, params: Dict[str, List[torch.Tensor]]) -> None:
        """Modulate the gradients of ``params`` (``{modality: [parameter]}``)."""
        if not self.active:
            return
        weights = {name: self.weight_of(name) for name in params}
        for name, group in params.items():
            k = weights[name]
            grads = [p.grad for p in group if p.grad is not None]
            if k is None or not grads:
                continue
            stds = None
            if self.noise is not None:  # of the gradient before scaling
                stds = [g.std() if g.numel() > 1 else g.new_zeros(()) for g in grads]
            if k != 1.0:
                torch._foreach_mul_(grads, float(k))
            if stds is not None:
                for grad, std in zip(grads, stds):
                    draw = torch.randn(
                        grad.shape,
                        generator=self.noise(grad.device),
                        device=grad.device,
                        dtype=grad.dtype)
                    grad.add_(draw.mul_(std))
