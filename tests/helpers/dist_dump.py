"""A hook that saves each rank's parameters and MWAM weights (imported by the
2-process test through custom_imports)."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from mwam_mm.engine import MWAMHook


@HOOKS.register_module(force=True)
class DumpRankStateHook(Hook):
    priority = 'LOWEST'

    def before_train(self, runner):
        self.weights = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        mwam = next(h for h in runner.hooks if isinstance(h, MWAMHook))
        self.weights.append(dict(mwam.weights))

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else \
            runner.model
        params = {k: v.detach().cpu() for k, v in model.named_parameters()}
        torch.save(dict(params=params, weights=self.weights),
                   osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
