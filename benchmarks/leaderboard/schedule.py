"""Training-length edits of a loaded config: epochs, a smoke run of a few
iterations, the test scale."""
import math
from typing import Optional, Tuple


def _fit_schedulers(cfg, length: int, old_length: int, by_epoch: bool) -> None:
    """Parameter schedulers of the loop's unit fitted to a training of
    ``length`` instead of ``old_length``. Shorter: each ends at ``length`` at the
    latest (a cosine's ``T_max`` follows its span; milestones are kept). Longer:
    a scheduler that ran to the old end is stretched to the new one (its
    ``end`` and a cosine's ``T_max``; a step schedule's milestones scaled by
    ``length / old_length``), so that a longer run is the same schedule, longer,
    rather than ``old_length`` of it and the rest at its final rate."""
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for scheduler in schedulers:
        if bool(scheduler.get('by_epoch', True)) != by_epoch:
            continue
        end = scheduler.get('end', math.inf)
        stretch = length > old_length and end >= old_length
        if not stretch and end <= length:
            continue
        if end != math.inf or not stretch:
            scheduler['end'] = length
        if 'T_max' in scheduler:
            scheduler['T_max'] = length - scheduler.get('begin', 0)
        if stretch and 'milestones' in scheduler:
            scheduler['milestones'] = [
                round(m * length / old_length) for m in scheduler['milestones']
            ]


def hook_within_iters(hook: dict, iters: int) -> dict:
    """A method hook's epoch-based schedule made to act within ``iters``
    iterations (a copy; other hooks unchanged): BTW refreshes after every
    iteration, RSC-MD warms up for one iteration, OGM-GE modulates throughout.
    For smoke runs, which train a few iterations of an epoch-based config."""
    hook = dict(hook)
    kind = hook.get('type')
    kind = (kind
            if isinstance(kind, str) else getattr(kind, '__name__', '')).split('.')[-1]
    if kind == 'BTWHook':
        hook.update(by_epoch=False, interval=1)
    elif kind == 'RSCMDHook':
        hook.pop('warmup_epochs', None)
        hook['warmup_iters'] = 1
    elif kind == 'OGMGEHook':
        hook.update(by_epoch=False, window=(0, iters))
    return hook


def apply_schedule(cfg,
                   epochs: Optional[int] = None,
                   max_iters: Optional[int] = None,
                   skip_validation: bool = True):
    """Change the training length of a loaded config (in place; returned).

    - ``epochs`` (a config with ``train_cfg.max_epochs``): that many epochs;
      schedulers by epoch end there at the latest (a cosine's ``T_max`` follows;
      milestones are kept), or, for a longer training, those that ran to the
      config's end are stretched to the new one (milestones scaled);
      checkpoints by epoch every ``epochs``.
    - ``max_iters`` on an epoch-based config (smoke runs): an
      ``IterBasedTrainLoop`` of that many iterations, no parameter schedulers, a
      checkpoint at the end, no data worker processes, the method hooks'
      schedules made to act within it (:func:`hook_within_iters`; the demo's
      smoke mode).
    - ``max_iters`` on an iteration-based config (``train_cfg.max_iters``): that
      many iterations; schedulers by iteration fitted as for ``epochs``.
    - ``skip_validation``: no validation during training (the benchmark tests
      by itself afterwards).

    Raises:
        ValueError: Both given, a value < 1, or ``epochs`` for an
            iteration-based config.
    """
    if epochs is not None and max_iters is not None:
        raise ValueError(f'give epochs ({epochs}) or max_iters ({max_iters}), not '
                         'both')
    for name, value in (('epochs', epochs), ('max_iters', max_iters)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    train_cfg = cfg.train_cfg
    by_epoch = 'max_epochs' in train_cfg
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if epochs is not None:
        if not by_epoch:
            raise ValueError(
                f'the config trains by iterations (train_cfg={dict(train_cfg)}); '
                'give max_iters instead of epochs')
        old_epochs = train_cfg.max_epochs
        train_cfg.max_epochs = epochs
        _fit_schedulers(cfg, epochs, old_epochs, by_epoch=True)
        if checkpoint is not None and checkpoint.get('by_epoch', True):
            checkpoint['interval'] = epochs
    elif max_iters is not None and by_epoch:
        cfg.train_cfg = dict(
            type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint = dict(
            type='CheckpointHook', interval=max_iters, by_epoch=False)
        cfg.log_processor = dict(cfg.get('log_processor') or {}, by_epoch=False)
        for loader in ('train_dataloader', 'test_dataloader', 'val_dataloader'):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
        cfg.custom_hooks = [
            hook_within_iters(hook, max_iters) for hook in cfg.get('custom_hooks', [])
        ]
        return cfg
    elif max_iters is not None:
        old_iters = train_cfg.max_iters
        train_cfg.max_iters = max_iters
        _fit_schedulers(cfg, max_iters, old_iters, by_epoch=False)
        if checkpoint is not None and not checkpoint.get('by_epoch', True):
            checkpoint['interval'] = max_iters
    if skip_validation:
        length = cfg.train_cfg.get('max_epochs', cfg.train_cfg.get('max_iters'))
        if length is not None:
            cfg.train_cfg.val_interval = length + 1
    return cfg


def set_test_scale(cfg, scale: Tuple[int, int]):
    """Every ``Resize`` of the val and test pipelines resizes to ``scale`` (the
    synthetic data's own size, when it is generated at another one)."""
    for loader in ('val_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            if step.get('type') == 'Resize':
                step['scale'] = tuple(scale)
    return cfg


__all__ = ['hook_within_iters', 'apply_schedule', 'set_test_scale']
