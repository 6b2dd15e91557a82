"""Shrinking real configs to a few iterations on tiny data, for tests."""
from mmengine.config import Config

from benchmarks.leaderboard import hook_within_iters
from tests.conftest import ROOT
from tests.helpers.runners import unique_experiment_name


def tiny_config(config: str,
                data_root: str,
                work_dir: str,
                iters: int = 2,
                batch_size: int = 2,
                **overrides) -> Config:
    """Load ``config`` and make it train ``iters`` iterations and test on tiny data.

    Keeps the model and pipelines as they are; only the loop, the loaders and the
    hooks that write images are changed.
    """
    cfg = Config.fromfile(config if config.startswith('/') else f'{ROOT}/{config}')
    cfg.work_dir = work_dir
    cfg.experiment_name = unique_experiment_name('tiny')
    if cfg.get('visualizer'):
        # mmdet and mmseg name theirs 'visualizer', and a Visualizer is a process-wide
        # instance by name: the next Runner would write into this one's work_dir
        cfg.visualizer.name = cfg.experiment_name
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=iters, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.batch_size = batch_size
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.pop('batch_sampler', None)
        loader.dataset.data_root = data_root
    cfg.custom_hooks = [
        hook_within_iters(hook, iters) for hook in cfg.get('custom_hooks', [])
    ]
    cfg.merge_from_dict(overrides)
    return cfg


def shrink_pipelines(cfg: Config, scale=(128, 96)) -> Config:
    """Same pipeline steps, small sizes: every resize scale and crop size shrunk."""
    w, h = scale
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        for step in cfg[name].dataset.pipeline:
            if 'scale' in step:
                step['scale'] = (w, h)
            if 'crop_size' in step:
                step['crop_size'] = (h, w)
    return cfg
