"""What every modality-balancing hook shares: branches, modulations, diagnostics."""
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..modality import LayoutLike, ModalityLayout
from .modulation import BranchGradientNorms, BranchModulation


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


def module_names(model: nn.Module, max_depth: int = 3, limit: int = 60) -> str:
    names = [n for n, _ in model.named_modules() if n and n.count('.') < max_depth]
    shown = ', '.join(names[:limit])
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return shown + more


def resuming(runner) -> bool:
    """Whether the runner is resuming a run (``resume=True``) rather than loading
    weights for a new one (``load_from``): a hook's training state is restored
    only then. mmengine's ``EMAHook`` tells the two apart the same way."""
    return bool(getattr(runner, '_resume', False))


def training_epoch(runner) -> int:
    """The epoch of the current training iteration.

    mmengine's ``IterBasedTrainLoop`` keeps ``runner.epoch`` at 0, so there the
    epoch is counted in passes over the training dataloader:
    ``runner.iter // len(runner.train_dataloader)``.
    """
    if isinstance(getattr(runner, 'train_loop', None), IterBasedTrainLoop):
        return runner.iter // max(len(runner.train_dataloader), 1)
    return runner.epoch


def model_layout(model: nn.Module, modalities: LayoutLike = None) -> ModalityLayout:
    """The model's modality layout: its backbone's, else ``modalities``'."""
    layout = getattr(getattr(model, 'backbone', None), 'layout', None)
    if isinstance(layout, ModalityLayout):
        return layout
    return ModalityLayout.build(modalities)


def resolve_branches(model: nn.Module,
                     paths: Optional[Dict[str, str]],
                     owner: str,
                     layout: Optional[ModalityLayout] = None) -> Dict[str, nn.Module]:
    """``{modality: branch module}`` from module paths, or from the backbone's
    ``modality_branches()`` (as :class:`mwam_mm.models.DualStreamBackbone` has).

    Branch names must be modality names of ``layout``, and no branch may contain
    another (by module path or by shared parameters).
    """
    layout = layout or model_layout(model)
    if paths is not None:
        unknown = [n for n in paths if n not in layout.names]
        if unknown:
            raise ValueError(
                f'{owner}: branch name(s) {unknown} are not modalities of the layout '
                f'{layout.names}; name each branch after its modality')
        items = sorted(paths.items(), key=lambda item: item[1])
        for (a, path_a), (b, path_b) in zip(items, items[1:]):
            if path_b == path_a or path_b.startswith(path_a + '.'):
                raise ValueError(
                    f'{owner}: branch {b!r} ({path_b!r}) lies inside branch {a!r} '
                    f'({path_a!r}); each modality needs a branch of its own')
    if paths is None:
        backbone = getattr(model, 'backbone', model)
        if not hasattr(backbone, 'modality_branches'):
            raise RuntimeError(
                f'{owner}: the model has no backbone with modality_branches() '
                '(such as DualStreamBackbone); name the branches, e.g. '
                "branches=dict(rgb='backbone.rgb_stream', thermal='backbone."
                "thermal_stream'). Available modules: " + module_names(model))
        branches = dict(backbone.modality_branches())
    else:
        branches = {}
        for name, path in paths.items():
            try:
                branches[name] = model.get_submodule(path)
            except AttributeError:
                raise AttributeError(
                    f'{owner}: branch {name!r}: the model has no module '
                    f'{path!r}. Available modules: {module_names(model)}') from None
    if len(branches) < 2:
        raise ValueError(f'{owner} needs at least two modality branches, got '
                         f'{list(branches)}')
    for name, module in branches.items():
        if not any(True for _ in module.parameters()):
            raise ValueError(f'{owner}: branch {name!r} has no parameters')
    check_own_parameters(model, branches, owner)
    return branches


def check_own_parameters(model: nn.Module, branches: Dict[str, nn.Module],
                         owner: str) -> None:
    """Refuse branches that share parameters with each other or with the rest of
    the model.

    A branch's weight scales its parameters' gradients; a parameter also used by
    another branch or outside the branch would scale that other use too, so
    per-branch weights could not be exact. Detected by name: a parameter of a
    branch must appear in the model only under that branch's own path(s).
    """
    paths: Dict[int, List[str]] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        paths.setdefault(id(module), []).append(path)
    owner_of = {}
    for name, module in branches.items():
        for param in module.parameters():
            if id(param) in owner_of:
                raise ValueError(
                    f'{owner}: branches {owner_of[id(param)]!r} and {name!r} share '
                    f'parameters ({_names_of(module, param)}); balancing needs one '
                    'branch of its own per modality')
            owner_of[id(param)] = name
    prefixes = {
        name: tuple(p + '.' for p in paths.get(id(module), []))
        for name, module in branches.items()
    }
    shared: Dict[str, List[str]] = {}
    for path, param in model.named_parameters(remove_duplicate=False):
        name = owner_of.get(id(param))
        if name is not None and prefixes[name] and \
                not path.startswith(prefixes[name]):
            shared.setdefault(name, []).append(path)
    if shared:
        listed = '; '.join(f'branch {n!r}: {paths[:8]}' +
                           (f' and {len(paths) - 8} more' if len(paths) > 8 else '')
                           for n, paths in shared.items())
        raise ValueError(
            f'{owner}: parameters of a branch are also used outside it ({listed}); '
            'a per-branch weight would also scale their use elsewhere, so it '
            'cannot be exact. Give each modality a branch whose parameters are '
            'its own (or name branches that do not share them)')


def _names_of(module: nn.Module, param) -> str:
    return ', '.join(n for n, p in module.named_parameters(remove_duplicate=False)
                     if p is param) or '?'


class ModalityBalancingHook(Hook):
    """Base of the balancing hooks (MWAM, and the methods compared with it).

    It finds the modality branches in ``before_run`` (where a subclass builds its
    state, before any checkpoint is loaded into it), installs the subclass's
    modulations (:mod:`mwam_mm.engine.modulation`) for training, switches them on
    for each training iteration only, and logs ``grad_norm_<modality>``, the norm
    of the gradient each branch receives, every iteration.

    Args:
        branches (dict, optional): ``{modality: module path}`` of each modality's
            own branch (e.g. ``'backbone.streams.rgb'``). Defaults to the
            backbone's ``modality_branches()``.
        log_grad_norm (bool): Log the per-branch gradient norms. Default True.
        modalities (list[dict], optional): The modality layout, for models whose
            backbone has none (``DualStreamBackbone`` has); ``None``: default.
    """

    priority = 'NORMAL'

    def __init__(self,
                 branches: Optional[Dict[str, str]] = None,
                 log_grad_norm: bool = True,
                 modalities: LayoutLike = None):
        self.branch_paths = dict(branches) if branches is not None else None
        self.log_grad_norm = log_grad_norm
        self.modalities = modalities
        self.layout: Optional[ModalityLayout] = None
        self.branches: Dict[str, nn.Module] = {}
        self.modulations: Dict[str, BranchModulation] = {}
        self.grad_norms: Optional[BranchGradientNorms] = None
        # a subclass's own torch hook handles, removed after training
        self._handles: list = []

    # subclasses ------------------------------------------------------------
    def setup(self, runner) -> None:
        """Build the method's state once the branches are known."""

    def build_modulations(self, runner) -> Dict[str, BranchModulation]:
        """The modulations to install for training."""
        return {}

    # hook points -----------------------------------------------------------
    def before_run(self, runner) -> None:
        model = unwrap(runner.model)
        self.layout = model_layout(model, self.modalities)
        self.branches = resolve_branches(model, self.branch_paths,
                                         type(self).__name__, self.layout)
        self.setup(runner)

    def before_train(self, runner) -> None:
        self.modulations = self.build_modulations(runner)
        for modulation in self.modulations.values():
            modulation.install(runner)
        if self.log_grad_norm:
            # optimizer step pre-hooks run in the order they are registered: the
            # norms are measured after any modulation, as the optimizer gets them
            self.grad_norms = BranchGradientNorms(self.branches)
            self.grad_norms.install(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        for modulation in self.modulations.values():
            modulation.active = True

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        for modulation in self.modulations.values():
            modulation.active = False
        if self.grad_norms is not None:
            for name, norm in self.grad_norms.norms.items():
                runner.message_hub.update_scalar(f'train/grad_norm_{name}', norm)

    def after_train(self, runner) -> None:
        for modulation in self.modulations.values():
            modulation.remove()
        self.modulations = {}
        if self.grad_norms is not None:
            self.grad_norms.remove()
        for handle in self._handles:
            handle.remove()
        self._handles = []


@HOOKS.register_module()
class BranchGradNormHook(ModalityBalancingHook):
    """Logs ``grad_norm_<modality>`` every iteration and changes nothing.

    Every balancing hook logs these already; this hook gives the same diagnostic
    for runs without one (plain training, modality dropout), to compare with.

    Args:
        branches (dict, optional): As :class:`ModalityBalancingHook`.
    """

    def __init__(self,
                 branches: Optional[Dict[str, str]] = None,
                 modalities: LayoutLike = None):
        super().__init__(branches, log_grad_norm=True, modalities=modalities)
