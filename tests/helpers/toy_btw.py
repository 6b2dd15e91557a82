"""A toy RGB-T model whose per-modality predictions are known, for BTWHook tests.

``known_predictions(sample_idx, version)`` is what the model's
``modality_predictions`` returns for a sample: fixed class probabilities that
depend only on the sample and on ``version``, the number of training forwards the
model has run (a buffer, so it is saved in checkpoints). A test can therefore
compute BTW's weights by hand for every refresh.
"""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

import mwam_mm  # noqa: F401
from mwam_mm.models import ModalityOutputsMixin
from mwam_mm.presence import weights_from_data_samples
from tests.helpers.runners import unique_experiment_name

NUM_CLASSES = 3
SOURCES = ('fused', 'rgb', 'thermal')


def known_predictions(sample_idx: int, version: int, top_k: int = 100) -> dict:
    """``{source: (K, C) float64 probabilities}`` of one sample.

    RGB's logits follow the fused ones closely (plus noise), thermal's are
    independent of them, so their KL and MI differ. ``K`` varies per sample;
    the ``top_k`` units of highest fused confidence are kept, as the contract
    says.
    """
    g = torch.Generator().manual_seed(10007 * int(version) + int(sample_idx))
    units = 2 + int(sample_idx) % 3
    fused = 2.0 * torch.randn(units, NUM_CLASSES, generator=g, dtype=torch.float64)
    logits = dict(
        fused=fused,
        rgb=fused +
        0.5 * torch.randn(units, NUM_CLASSES, generator=g, dtype=torch.float64),
        thermal=2.0 * torch.randn(units, NUM_CLASSES, generator=g, dtype=torch.float64))
    probs = {k: v.softmax(dim=1) for k, v in logits.items()}
    order = probs['fused'].max(dim=1).values.argsort(descending=True)[:top_k]
    return {k: v[order] for k, v in probs.items()}


@MODELS.register_module(force=True)
class BTWToyStream(nn.Module):
    """One 3x3 conv; one feature level of 4 channels."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)

    def forward(self, x):
        return (self.conv(x), )


@MODELS.register_module(force=True)
class BTWToyModel(BaseModel, ModalityOutputsMixin):
    """Dual-stream backbone + 1x1 head regressing a scalar per image.

    Records, per training forward, the batch's ``sample_idx`` and the
    ``modality_weights`` its samples carried (``seen``, as the ``(B, M)`` tensor
    passed to the backbone), and per ``modality_predictions``
    call its mode and arguments (``prediction_calls``).

    Args:
        no_units (Sequence[int]): Samples whose predictions have no scoring
            units (an image without objects or labelled pixels).
    """

    def __init__(self, no_units=()):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='DualStreamBackbone',
                backbone=dict(type='BTWToyStream'),
                probe_size=(8, 8)))
        self.head = nn.Conv2d(4, 1, 1)
        self.register_buffer('version', torch.zeros((), dtype=torch.long))
        self.no_units = set(no_units)
        self.seen = []
        self.prediction_calls = []

    def has_modality_heads(self) -> bool:
        return False

    def forward(self, inputs, data_samples=None, mode='loss'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        weights = None
        if self.training:
            weights = weights_from_data_samples(data_samples, self.backbone.layout)
            self.seen.append(
                ([s.sample_idx
                  for s in data_samples], None if weights is None else weights.clone()))
            self.version += 1
        pred = self.head(self.backbone(x, None, weights)[0]).mean(dim=(1, 2, 3))
        if mode != 'loss':
            return pred
        target = torch.tensor([s.target for s in data_samples], dtype=pred.dtype)
        return dict(loss=((pred - target)**2).mean())

    @torch.no_grad()
    def modality_predictions(self,
                             batch_inputs,
                             batch_data_samples,
                             source='view',
                             top_k=100):
        indices = [int(s.sample_idx) for s in batch_data_samples]
        self.prediction_calls.append(
            dict(
                training=self.training,
                grad=torch.is_grad_enabled(),
                source=source,
                top_k=top_k,
                version=int(self.version),
                sample_idx=indices))
        preds = {k: [] for k in SOURCES}
        for index in indices:
            known = known_predictions(index, int(self.version), top_k)
            for k in SOURCES:
                preds[k].append(known[k][:0] if index in self.no_units else known[k])
        return preds


class BTWToyDataset(Dataset):
    """``index -> dict(inputs=(4, S, S), data_samples=...)`` with ``sample_idx``
    (unless ``with_sample_idx=False``) and a scalar ``target``."""

    def __init__(self, length=8, size=8, with_sample_idx=True):
        self.length, self.size = length, size
        self.with_sample_idx = with_sample_idx

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        g = torch.Generator().manual_seed(int(index))
        x = torch.randn(4, self.size, self.size, generator=g)
        meta = dict(img_path=f'{int(index)}.png')
        if self.with_sample_idx:
            meta['sample_idx'] = int(index)
        sample = BaseDataElement(metainfo=meta)
        sample.target = float(x[0].mean())
        return dict(inputs=x, data_samples=sample)


def btw_runner(work_dir,
               hook,
               epochs=3,
               length=8,
               batch_size=4,
               name=None,
               model=None,
               resume=False,
               load_from=None,
               launcher='none',
               with_sample_idx=True,
               train_cfg=None):
    kwargs = {}
    train_cfg = train_cfg or dict(by_epoch=True, max_epochs=epochs)
    # an iteration-based loop restarts a finite sampler with a 2 s pause
    sampler = 'DefaultSampler' if train_cfg.get('by_epoch', True) else \
        'InfiniteSampler'
    if launcher != 'none':  # gloo on CPU: DDP without device ids
        kwargs['cfg'] = dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel',
                device_ids=None,
                broadcast_buffers=False))
    return Runner(
        model=model or dict(type='BTWToyModel'),
        work_dir=str(work_dir),
        experiment_name=unique_experiment_name(name),
        train_dataloader=dict(
            dataset=BTWToyDataset(length=length, with_sample_idx=with_sample_idx),
            sampler=dict(type=sampler, shuffle=True),
            batch_size=batch_size,
            num_workers=0),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[hook],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from,
        launcher=launcher,
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_scope='mmengine',
        **kwargs)


def dist_worker(rank, world_size, port, work_dir, epochs, length, batch_size):
    """One rank of a 2-process gloo training with BTWHook (torch.multiprocessing
    spawn target); saves the rank's weights and what its model saw."""
    from mwam_mm.engine import BTWHook
    os.environ.update(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        runner = btw_runner(
            work_dir,
            BTWHook(interval=1, top_k=3, mi_bins=3, rescale=False),
            epochs=epochs,
            length=length,
            batch_size=batch_size,
            name=f'dist{rank}',
            launcher='pytorch')
        runner.train()
        hook = next(h for h in runner.hooks if isinstance(h, BTWHook))
        model = runner.model.module
        params = {k: v.detach().clone() for k, v in model.named_parameters()}
        torch.save(
            dict(
                weights=hook.weights,
                seen=model.seen,
                calls=model.prediction_calls,
                params=params), osp.join(work_dir, f'rank{rank}.pth'))
    finally:
        torch_dist.destroy_process_group()
