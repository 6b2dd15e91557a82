"""Detection graphs: the RGB-T detectors' inference with post-processing inside.

The graph's inputs are the preprocessed batch (what the config's data
preprocessor gives: normalised, channels in layout order, padded), each image's
``image_shape`` (height, width before padding: mmdet's ``img_shape``) and
``scale_factor`` (``w_scale, h_scale``: mmdet's), and, optionally, ``presence``.
Its outputs are mmdet's predictions in original image pixels, padded to the
test config's ``max_per_img`` per image: ``boxes`` ``(B, K, 4)``, ``scores``
``(B, K)`` (0 where empty) and ``labels`` ``(B, K)`` (-1 where empty), sorted by
score.

The post-processing is mmdet's, rewritten without data-dependent shapes: per
level the top ``nms_pre`` (anchor, class) pairs, those above ``score_thr`` kept
(a mask, not a filter), boxes decoded and clipped to ``image_shape``, rescaled
by ``scale_factor``, class-aware NMS with mmdet's coordinate offsets
(:func:`mwam_mm.deploy.ops.nms_keep`), then the ``max_per_img`` best.
"""
from typing import List, Optional

import torch
import torch.nn as nn
from mmdet.models.dense_heads import AnchorHead
from mmdet.models.detectors import SingleStageDetector, TwoStageDetector

from .features import ExportError, RGBTGraph
from .ops import nms_keep

DETECTION_OUTPUTS = ('boxes', 'scores', 'labels')


def clip_boxes(boxes: torch.Tensor, image_shape: torch.Tensor) -> torch.Tensor:
    """``(B, N, 4)`` boxes clipped to each image's ``(height, width)``."""
    height = image_shape[:, 0].to(boxes).view(-1, 1)
    width = image_shape[:, 1].to(boxes).view(-1, 1)
    zero = torch.zeros_like(height)
    x1, y1, x2, y2 = boxes.unbind(dim=-1)
    return torch.stack([
        torch.minimum(torch.maximum(x1, zero), width),
        torch.minimum(torch.maximum(y1, zero), height),
        torch.minimum(torch.maximum(x2, zero), width),
        torch.minimum(torch.maximum(y2, zero), height)
    ],
                       dim=-1)


def rescale_boxes(boxes: torch.Tensor, scale_factor: torch.Tensor) -> torch.Tensor:
    """Boxes of the resized image in original pixels (mmdet's
    ``scale_boxes(boxes, 1 / scale_factor)``)."""
    inverse = 1.0 / scale_factor.to(boxes)
    return boxes * inverse.repeat(1, 2).view(-1, 1, 4)


def check_test_cfg(cfg, where: str, dense: bool = True) -> None:
    """Refuse, naming the key, test settings whose meaning in mmdet depends on
    data-dependent sizes the graph does not have."""
    max_per_img = cfg.get('max_per_img')
    if not isinstance(max_per_img, int) or max_per_img <= 0:
        raise ExportError(f'{where}.max_per_img is {max_per_img!r}; the graph '
                          'returns a fixed number of detections per image: set a '
                          'positive integer')
    nms_pre = cfg.get('nms_pre', -1)
    if dense and (not isinstance(nms_pre, int) or nms_pre <= 0):
        raise ExportError(f'{where}.nms_pre is {nms_pre!r}; the export needs a '
                          'positive number of candidates per level (mmdet keeps '
                          'min(nms_pre, candidates) of them)')


def nms_and_top(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                valid: torch.Tensor, cfg) -> tuple:
    """mmdet's ``batched_nms`` and ``max_per_img`` on masked candidates.

    Args:
        boxes (Tensor): ``(B, N, 4)`` in original pixels.
        scores, labels (Tensor): ``(B, N)``.
        valid (Tensor): ``(B, N)`` bool: candidates that passed the filters.
        cfg: The test config (``nms.iou_threshold``, ``max_per_img``).

    Returns:
        tuple: boxes ``(B, K, 4)``, scores ``(B, K)``, labels ``(B, K)``.
    """
    nms_cfg = dict(cfg['nms'])
    if nms_cfg.get('type', 'nms') != 'nms' or nms_cfg.get('class_agnostic', False):
        raise ExportError(f'the test config\'s nms is {nms_cfg}; the export supports '
                          "class-aware type='nms' only")
    # mmdet's offsets: one class's boxes never overlap another's
    max_coordinate = torch.where(valid.unsqueeze(-1), boxes,
                                 torch.zeros_like(boxes)).amax(dim=(1, 2))
    offsets = labels.to(boxes) * (max_coordinate.view(-1, 1) + 1)
    masked = torch.where(valid, scores, torch.full_like(scores, -1.0))
    keep = nms_keep(boxes + offsets.unsqueeze(-1), masked,
                    float(nms_cfg['iou_threshold']), -0.5)
    kept = torch.where(keep, masked, torch.full_like(masked, -1.0))
    count = min(int(cfg['max_per_img']), kept.shape[1])
    top, index = kept.topk(count, dim=1)
    found = top > -0.5
    boxes = torch.gather(boxes, 1, index.unsqueeze(-1).expand(-1, -1, 4))
    labels = torch.gather(labels, 1, index)
    return (torch.where(found.unsqueeze(-1), boxes, torch.zeros_like(boxes)),
            torch.where(found, top, torch.zeros_like(top)),
            torch.where(found, labels, torch.full_like(labels, -1)))


def anchor_candidates(head: AnchorHead, cls_scores: List[torch.Tensor],
                      bbox_preds: List[torch.Tensor], image_shape: torch.Tensor,
                      cfg) -> dict:
    """Each level's best ``nms_pre`` (anchor, class) pairs, decoded: mmdet's
    ``filter_scores_and_topk`` and ``bbox_coder.decode``, batched, as masks.

    Returns:
        dict: ``boxes`` ``(B, N, 4)`` (clipped to ``image_shape``), and
        ``(B, N)`` ``scores``, ``labels``, ``levels`` (pyramid level) and
        ``valid`` (above the config's ``score_thr``; all, without one: the
        RPN's).
    """
    batch = cls_scores[0].shape[0]
    classes = head.cls_out_channels
    priors = head.prior_generator.grid_priors([s.shape[-2:] for s in cls_scores],
                                              dtype=cls_scores[0].dtype,
                                              device=cls_scores[0].device)
    nms_pre = cfg.get('nms_pre', -1)
    out = dict(boxes=[], scores=[], labels=[], levels=[])
    for level, (cls_score, bbox_pred,
                level_priors) in enumerate(zip(cls_scores, bbox_preds, priors)):
        scores = cls_score.permute(0, 2, 3, 1).reshape(batch, -1, classes)
        scores = scores.sigmoid() if head.use_sigmoid_cls else \
            scores.softmax(-1)[..., :-1]
        labels_per_anchor = scores.shape[-1]
        deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1,
                                                       head.bbox_coder.encode_size)
        flat = scores.reshape(batch, -1)
        count = flat.shape[1] if nms_pre <= 0 else min(int(nms_pre), flat.shape[1])
        top, index = flat.topk(count, dim=1)
        anchor = torch.div(index, labels_per_anchor, rounding_mode='floor')
        deltas = torch.gather(deltas, 1,
                              anchor.unsqueeze(-1).expand(-1, -1, deltas.shape[-1]))
        anchors = level_priors[anchor.reshape(-1)]
        boxes = head.bbox_coder.decode(anchors, deltas.reshape(-1, deltas.shape[-1]))
        boxes = boxes.reshape(batch, count, 4)
        if getattr(head.bbox_coder, 'clip_border', True):
            boxes = clip_boxes(boxes, image_shape)
        out['boxes'].append(boxes)
        out['scores'].append(top)
        out['labels'].append(index - anchor * labels_per_anchor)
        out['levels'].append(torch.full_like(index, level))
    out = {key: torch.cat(value, dim=1) for key, value in out.items()}
    score_thr = cfg.get('score_thr')
    out['valid'] = torch.ones_like(out['scores'], dtype=torch.bool) \
        if score_thr is None else out['scores'] > float(score_thr)
    return out


def min_size_filter(boxes: torch.Tensor, valid: torch.Tensor, cfg) -> torch.Tensor:
    """mmdet's ``min_bbox_size`` filter (on rescaled boxes), as a mask."""
    min_size = cfg.get('min_bbox_size', -1)
    if min_size < 0:
        return valid
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return valid & (width > min_size) & (height > min_size)


class DetectionGraph(RGBTGraph):
    """The inputs and outputs every detection graph has (see the module)."""

    output_names = list(DETECTION_OUTPUTS)

    @property
    def input_names(self) -> List[str]:
        return ['image', 'image_shape', 'scale_factor'] + self.presence_input()


class SingleStageDetectionGraph(DetectionGraph):
    """An RGB-T single-stage detector (anchor head) with its post-processing.

    Args:
        model (SingleStageDetector): The detector (eval mode).
        with_presence (bool): Take a ``presence`` input.
    """

    def __init__(self, model: SingleStageDetector, with_presence: bool = True):
        super().__init__(model, with_presence)
        head = model.bbox_head
        cls = type(head)
        if not isinstance(head, AnchorHead) or any(
                getattr(cls, name) is not getattr(AnchorHead, name)
                for name in ('_predict_by_feat_single', 'get_targets', 'forward')) \
                or getattr(head.loss_cls, 'custom_cls_channels', False):
            raise ExportError(
                f'bbox_head is {cls.__name__}; the single-stage export supports '
                "anchor heads with mmdet's outputs and post-processing (RetinaHead: "
                'AnchorHead subclasses that keep its forward, get_targets and '
                '_predict_by_feat_single, e.g. no centerness as in ATSSHead)')
        check_test_cfg(head.test_cfg, 'model.test_cfg')

    def forward(self,
                image: torch.Tensor,
                image_shape: torch.Tensor,
                scale_factor: torch.Tensor,
                presence: Optional[torch.Tensor] = None) -> tuple:
        model = self.model
        cls_scores, bbox_preds = model.bbox_head(self.features(image, presence))
        cfg = dict(model.bbox_head.test_cfg)
        cfg.setdefault('score_thr', 0)  # mmdet's default for dense heads
        found = anchor_candidates(model.bbox_head, cls_scores, bbox_preds, image_shape,
                                  cfg)
        boxes = rescale_boxes(found['boxes'], scale_factor)
        valid = min_size_filter(boxes, found['valid'], cfg)
        return nms_and_top(boxes, found['scores'], found['labels'], valid, cfg)


def detection_graph(model, with_presence: bool = True) -> nn.Module:
    """The export module of an RGB-T detector."""
    if isinstance(model, TwoStageDetector):
        from .two_stage import TwoStageDetectionGraph
        return TwoStageDetectionGraph(model, with_presence)
    if isinstance(model, SingleStageDetector):
        return SingleStageDetectionGraph(model, with_presence)
    raise ExportError(f'{type(model).__name__} is neither a single-stage nor a '
                      'two-stage mmdet detector')
