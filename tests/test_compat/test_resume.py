"""Exact resume of an epoch-based run interrupted in the middle of an epoch."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import mwam_mm  # noqa: F401
from mwam_mm.compat import (ResumableSampler, SeededIndex, load_local_checkpoint,
                            seeded_randomness)
from mwam_mm.compat.resume import RESUME_KEY, _SkipFirstBatches
from mwam_mm.datasets import LLVIPDataset
from tests.helpers.configs import tiny_config
from tests.helpers.runners import params_of

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'


def resumable_config(root, work_dir, num_workers=0):
    """The shipped synthetic detector with the two config lines of the README
    ("Reliability") set, 2 epochs, a checkpoint every 2 iterations (mid-epoch),
    the real datasets' batch sampler, random augmentation (flip, photometric) and
    model-side randomness (modality dropout in the data preprocessor, torch's
    generator)."""
    cfg = tiny_config(SYNTHETIC, root, work_dir)
    cfg.train_cfg = dict(
        type='ResumableEpochBasedTrainLoop', max_epochs=2, val_interval=10)
    cfg.train_dataloader.sampler = dict(type='ResumableSampler', shuffle=True)
    cfg.train_dataloader.batch_sampler = dict(type='AspectRatioBatchSampler')
    cfg.train_dataloader.num_workers = num_workers
    cfg.train_dataloader.persistent_workers = num_workers > 0
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=2, by_epoch=False)
    cfg.param_scheduler = [  # per iteration, and per epoch across the resume
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5),
        dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.5)
    ]
    cfg.model.data_preprocessor.modality_dropout = dict(
        protocol='subsets', level='input')
    return cfg


@pytest.fixture
def one_thread():
    # two training runs in a few seconds on 2 shared cores: no thread contention
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_mid_epoch_resume_ends_with_the_uninterrupted_weights(
        synthetic_root, tmp_path, one_thread):
    straight = Runner.from_cfg(resumable_config(synthetic_root, str(tmp_path / 'a')))
    straight.train()
    per_epoch = len(straight.train_dataloader)
    assert per_epoch > 4 and straight.iter == 2 * per_epoch
    final = params_of(straight)
    state = load_local_checkpoint(str(tmp_path / 'a' / 'iter_4.pth'))[RESUME_KEY]
    assert state == dict(
        epoch=0,
        batches_done=4,
        iter=4,
        epoch_length=per_epoch,
        sampler_seed=straight.train_dataloader.batch_sampler.sampler.seed)

    # killed after iteration 4 of epoch 0; resumed with a (persistent) data worker
    cfg = resumable_config(synthetic_root, str(tmp_path / 'b'), num_workers=1)
    cfg.resume, cfg.load_from = True, str(tmp_path / 'a' / 'iter_4.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.iter == straight.iter and resumed.epoch == 2
    again = params_of(resumed)
    assert again.keys() == final.keys()
    different = [k for k in final if not torch.equal(final[k], again[k])]
    assert not different, different[:5]


def test_resumable_sampler_keeps_the_order_and_keys_each_sample():
    dataset = list(range(10))
    sampler = ResumableSampler(dataset, shuffle=True, seed=7)
    sampler.set_epoch(3)
    indices = list(sampler)
    from mmengine.dataset import DefaultSampler
    stock = DefaultSampler(dataset, shuffle=True, seed=7)
    stock.set_epoch(3)
    assert indices == list(stock)  # the same order as mmengine's
    assert [i.key for i in indices] == [(7, 3, p) for p in range(10)]
    copy = pickle.loads(pickle.dumps(indices[4]))  # as sent to data workers
    assert isinstance(copy, SeededIndex) and copy == indices[4]
    assert copy.key == indices[4].key
    batches = _SkipFirstBatches(
        torch.utils.data.BatchSampler(indices, 3, drop_last=False), 2)
    assert list(batches) == [indices[6:9], indices[9:]] and len(batches) == 2


def test_a_keyed_sample_gets_the_same_augmentation_whatever_ran_before(
        synthetic_root, mmdet_scope):
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomFlip', prob=0.5),
        dict(
            type='PerModality',
            modality='rgb',
            transforms=[dict(type='PhotoMetricDistortion')]),
    ]
    ds = LLVIPDataset(
        data_root=synthetic_root,
        pipeline=pipeline,
        metainfo=dict(classes=('person', 'vehicle')))
    index = SeededIndex(2, (11, 0, 5))
    first = ds[index]['img']
    np.random.seed(123)
    torch.manual_seed(5)
    np.random.rand(17)
    second = ds[index]['img']
    np.testing.assert_array_equal(first, second)
    # the global streams around it are left as they were
    with seeded_randomness((1, 2)):
        inside = np.random.rand()
    state = np.random.get_state()
    ds[index]
    assert np.array_equal(np.random.get_state()[1], state[1])
    with seeded_randomness((1, 2)):
        assert np.random.rand() == inside
    others = {ds[SeededIndex(2, (11, 0, p))]['img'].tobytes() for p in range(6)}
    assert len(others) > 1  # other positions, other draws
