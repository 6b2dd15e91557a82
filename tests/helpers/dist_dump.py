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
        self.weights, self.presence, self.grad_norms = [], [], []
        model = runner.model.module if hasattr(runner.model, 'module') else \
            runner.model

        def record(module, args, kwargs):  # the mask the fusion gets
            presence = kwargs.get('presence')
            self.presence.append(None if presence is None else presence.cpu())

        model.backbone.fusions[0].register_forward_pre_hook(record, with_kwargs=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        mwam = next(h for h in runner.hooks if isinstance(h, MWAMHook))
        self.weights.append(dict(mwam.weights))
        self.grad_norms.append(dict(mwam.grad_norms.norms))

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else \
            runner.model
        params = {k: v.detach().cpu() for k, v in model.named_parameters()}
        torch.save(
            dict(
                params=params,
                weights=self.weights,
                presence=self.presence,
                grad_norms=self.grad_norms),
            osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
