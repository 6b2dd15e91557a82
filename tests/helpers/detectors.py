"""Tiny RGB-T detectors for the model tests: RetinaNet and Faster R-CNN built
from the real base configs at a small width, a batch, and the loss helpers
the single-stage, two-stage and shared-component tests use."""
import copy

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from tests.conftest import ROOT
from tests.helpers.detection import detection_batch

RETINA = 'configs/_base_/models/retinanet_dual-r18_fpn.py'
FRCNN = 'configs/_base_/models/faster-rcnn_dual-r18_fpn.py'
NUM_CLASSES = 2


def retina_cfg(**model):
    cfg = Config.fromfile(f'{ROOT}/{RETINA}').model
    cfg.backbone.backbone.base_channels = 8
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.bbox_head.update(
        num_classes=NUM_CLASSES, in_channels=16, feat_channels=16, stacked_convs=1)
    cfg.update(model)
    return cfg


def frcnn_cfg(all_rois=False, **model):
    """Tiny Faster R-CNN; ``all_rois``: the RoI sampler keeps every proposal
    (and the test-time RPN gives the training proposals), so the sampled RoIs
    can be recomputed by hand."""
    cfg = Config.fromfile(f'{ROOT}/{FRCNN}').model
    cfg.backbone.backbone.base_channels = 8
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.roi_head.bbox_head.update(
        in_channels=16, fc_out_channels=32, num_classes=NUM_CLASSES)
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=60)
    cfg.train_cfg.rcnn.sampler.num = 64
    cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=60)
    if all_rois:
        cfg.train_cfg.rcnn.sampler.num = 10**6
        cfg.test_cfg.rpn = copy.deepcopy(cfg.train_cfg.rpn_proposal)
    cfg.update(model)
    return cfg


CONFIGS = {'retinanet': retina_cfg, 'faster-rcnn': frcnn_cfg}
STOCK = {'retinanet': 'RetinaNet', 'faster-rcnn': 'FasterRCNN'}


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(copy.deepcopy(cfg))


def batch(num=2, seed=0):
    return detection_batch(num, seed)


def preprocess(model, data, training=True):
    return model.data_preprocessor(copy.deepcopy(data), training)


def run_loss(model, data, seed=0):
    torch.manual_seed(seed)  # Faster R-CNN samples proposals at random
    return model(**preprocess(model, data), mode='loss')


def losses_by_source(model, data) -> dict:
    """``{source: the loss dict}`` with the scores from ``'aux'`` and ``'view'``."""
    got = {}
    for source in ('aux', 'view'):
        model.modality_scores_source = source
        got[source] = run_loss(model, data)
    return got


def total(losses, keep=lambda key: True):
    """The sum of the selected loss entries, as mmengine's parse_losses sums."""
    values = []
    for key, value in losses.items():
        if 'loss' in key and keep(key):
            values += list(value) if isinstance(value, (list, tuple)) else [value]
    return sum(v.mean() for v in values)


def is_aux(key):
    return key.endswith('_rgb') or key.endswith('_thermal')


def same_losses(a, b, keys):
    for key in keys:
        torch.testing.assert_close(total({key: a[key]}), total({key: b[key]}))


def iou(a, b):
    """IoU of every box in ``a`` (G, 4) with every box in ``b`` (A, 4), as
    mmdet computes it (no +1, eps 1e-6)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    overlap = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = (area_a[:, None] + area_b[None] - overlap).clamp(min=1e-6)
    return overlap / union


def leaves(outputs) -> list:
    """The tensors of nested tuples and lists, in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for item in outputs for t in leaves(item)]
