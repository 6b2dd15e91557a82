"""SplitMetric (one metric scored per day / night split from one test pass) and
the day / night lists of the datasets."""
import os
import os.path as osp

import pytest
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.evaluation import SplitMetric, find_day_night_splits


@METRICS.register_module(force=True)
class _ToyScoreMetric(BaseMetric):
    """The mean of the samples' ``score`` (one result per sample)."""
    default_prefix = 'toy'

    def __init__(self, per_sample=1, **kwargs):
        super().__init__(**kwargs)
        self.per_sample = per_sample

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.extend([s['score']] * self.per_sample)

    def compute_metrics(self, results):
        return dict(score=sum(results) / len(results))


def test_split_metric_scores_each_split_from_one_pass(tmp_path):
    night_file = tmp_path / 'night.txt'
    night_file.write_text('b\nd.jpg\n')
    metric = SplitMetric(
        metric=dict(type='_ToyScoreMetric'),
        splits=dict(day=['a', 'c'], night=str(night_file), empty=['zzz']))
    metric.dataset_meta = dict(classes=('x', ))
    assert metric.metric.dataset_meta == dict(classes=('x', ))
    batch = [
        dict(img_id='a', score=1.0),
        dict(img_path='/x/b.jpg', score=0.0),
        dict(seg_map_path='/y/c.png', score=0.5),
        dict(stacked_path='/z/d.png', score=0.25),
    ]
    metric.process(None, batch[:2])
    metric.process(None, batch[2:])
    with pytest.warns(UserWarning, match="no test sample is in split 'empty'"):
        out = metric.evaluate(4)
    assert out == {
        'toy/score': pytest.approx(1.75 / 4),
        'day/toy/score': pytest.approx(0.75),
        'night/toy/score': pytest.approx(0.125)
    }
    bad = SplitMetric(
        metric=dict(type='_ToyScoreMetric', per_sample=2), splits=dict(day=['a']))
    with pytest.raises(RuntimeError, match='stored 4 results for a batch of 2'):
        bad.process(None, batch[:2])
    with pytest.raises(ValueError, match='non-empty dict'):
        SplitMetric(metric=dict(type='_ToyScoreMetric'), splits={})


def test_split_metric_wraps_mmdets_voc_metric():
    with DefaultScope.overwrite_default_scope('mmdet'):
        metric = METRICS.build(
            dict(
                type='SplitMetric',
                metric=dict(type='VOCMetric'),
                splits=dict(night=['n1'])))
    assert type(metric.metric).__name__ == 'VOCMetric'


def test_split_metric_wraps_mmsegs_iou_metric():
    import torch
    with DefaultScope.overwrite_default_scope('mmseg'):
        metric = METRICS.build(
            dict(
                type='SplitMetric',
                metric=dict(type='IoUMetric', iou_metrics=['mIoU']),
                splits=dict(day=['a'], night=['b'])))
    metric.dataset_meta = dict(classes=('x', 'y'))

    def seg(name, pred, gt):
        return dict(
            seg_map_path=f'/labels/{name}.png',
            pred_sem_seg=dict(data=torch.tensor(pred)[None]),
            gt_sem_seg=dict(data=torch.tensor(gt)[None]))

    metric.process(None, [
        seg('a', [[0, 1], [1, 1]], [[0, 1], [0, 1]]),
        seg('b', [[0, 0], [0, 0]], [[1, 1], [0, 0]])
    ])
    out = metric.evaluate(2)
    # a: IoU x 1/2, y 2/3; b: x 2/4, y 0/2; both: x 3/6, y 2/5 (in %)
    assert float(out['day/mIoU']) == pytest.approx((50 + 200 / 3) / 2, abs=0.01)
    assert float(out['night/mIoU']) == pytest.approx(25.0)
    assert float(out['mIoU']) == pytest.approx(45.0)


def test_day_night_lists_are_found(synthetic_root, tmp_path):
    dataset = dict(
        type='LLVIPDataset',
        data_root=synthetic_root,
        data_prefix=dict(img='visible/test', thermal='infrared/test'))
    splits = find_day_night_splits(dataset)
    stems = sorted(f[:-4]
                   for f in os.listdir(osp.join(synthetic_root, 'visible', 'test')))
    night = open(osp.join(synthetic_root, 'night_test.txt')).read().split()
    assert splits['night'] == sorted(night)
    assert sorted(splits['day'] + splits['night']) == stems
    assert not set(splits['day']) & set(night)
    # MFNet: lists next to the split file, else the names' D / N
    (tmp_path / 'test.txt').write_text('00001D\n00002N\n00003D\n')
    mfnet = dict(type='MFNetDataset', data_root=str(tmp_path), ann_file='test.txt')
    assert find_day_night_splits(mfnet) == dict(
        day=['00001D', '00003D'], night=['00002N'])
    (tmp_path / 'test_day.txt').write_text('00001D\n')
    (tmp_path / 'test_night.txt').write_text('00002N\n00003D\n')
    assert find_day_night_splits(mfnet) == dict(
        day=['00001D'], night=['00002N', '00003D'])
    assert find_day_night_splits(dict(type='PST900Dataset', data_root='/none')) is None
