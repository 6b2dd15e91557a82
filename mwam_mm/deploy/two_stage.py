"""The two-stage detection graph (Faster R-CNN): RPN proposals, multi-level
RoIAlign and the box head, with mmdet's post-processing at both stages.

Same inputs and outputs as :class:`~mwam_mm.deploy.detection.
SingleStageDetectionGraph`. The RPN's ``max_per_img`` proposals per image are
kept as a fixed-size set with a validity mask (mmdet keeps fewer when fewer
survive its NMS); an invalid proposal's detections are masked out, so the
results are mmdet's. Each RoI is pooled at every pyramid level and the level
mmdet's ``SingleRoIExtractor`` maps it to is selected (no data-dependent
gather).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.ops import RoIAlign
from mmdet.models.dense_heads import RPNHead
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor

from .detection import (DetectionGraph, anchor_candidates, check_test_cfg, clip_boxes,
                        min_size_filter, nms_and_top, rescale_boxes)
from .features import ExportError
from .ops import roi_align


def _check_two_stage(model) -> None:
    """Refuse, naming the part, what the graph does not reproduce."""
    rpn = getattr(model, 'rpn_head', None)
    if not isinstance(rpn, RPNHead) or \
            type(rpn)._predict_by_feat_single is not RPNHead._predict_by_feat_single:
        raise ExportError(f'rpn_head is {type(rpn).__name__}; the two-stage export '
                          "supports mmdet's RPNHead")
    roi_head = model.roi_head
    if type(roi_head) is not StandardRoIHead or roi_head.with_shared_head or \
            getattr(roi_head, 'with_mask', False):
        raise ExportError(
            f'roi_head is {type(roi_head).__name__}; the two-stage export supports '
            "mmdet's StandardRoIHead with a box head only (no shared head, no mask "
            'head)')
    extractor = roi_head.bbox_roi_extractor
    if type(extractor) is not SingleRoIExtractor:
        raise ExportError(f'roi_head.bbox_roi_extractor is {type(extractor).__name__}; '
                          "the export supports mmdet's SingleRoIExtractor")
    for index, layer in enumerate(extractor.roi_layers):
        if not isinstance(layer, RoIAlign) or layer.pool_mode != 'avg' or \
                not layer.aligned:
            raise ExportError(
                f'roi_head.bbox_roi_extractor.roi_layers.{index} is {layer!r}; the '
                "export supports mmcv's RoIAlign with pool_mode='avg', "
                'aligned=True (ONNX RoiAlign, half-pixel coordinates)')
        height, width = layer.output_size
        if height != width:
            raise ExportError(
                f'roi_head.bbox_roi_extractor.roi_layers.{index} has output_size '
                f'{layer.output_size}: the export needs a square one')
    check_test_cfg(rpn.test_cfg, 'model.test_cfg.rpn')
    check_test_cfg(roi_head.test_cfg, 'model.test_cfg.rcnn', dense=False)
    box_head = roi_head.bbox_head
    if not isinstance(box_head, BBoxHead) or box_head.custom_cls_channels or \
            type(box_head)._predict_by_feat_single is not \
            BBoxHead._predict_by_feat_single:
        raise ExportError(f'roi_head.bbox_head is {type(box_head).__name__}; the '
                          "export supports BBoxHead's post-processing (softmax "
                          'scores), e.g. Shared2FCBBoxHead')


class TwoStageDetectionGraph(DetectionGraph):
    """An RGB-T two-stage detector (RPN + StandardRoIHead) as a graph.

    Args:
        model (TwoStageDetector): The detector (eval mode).
        with_presence (bool): Take a ``presence`` input.
    """

    def __init__(self, model, with_presence: bool = True):
        super().__init__(model, with_presence)
        _check_two_stage(model)

    def proposals(self, feats: tuple, image_shape: torch.Tensor) -> tuple:
        """mmdet's RPN proposals (``rescale=False``): ``(B, P, 4)`` boxes and a
        ``(B, P)`` validity mask."""
        rpn = self.model.rpn_head
        cfg = dict(rpn.test_cfg)
        cfg.pop('score_thr', None)
        cls_scores, bbox_preds = rpn(feats)
        found = anchor_candidates(rpn, cls_scores, bbox_preds, image_shape, cfg)
        valid = min_size_filter(found['boxes'], found['valid'], cfg)
        boxes, _, levels = nms_and_top(found['boxes'], found['scores'], found['levels'],
                                       valid, cfg)
        return boxes, levels >= 0

    def pooled(self, feats: tuple, rois: torch.Tensor) -> torch.Tensor:
        """``SingleRoIExtractor`` on ``(K, 5)`` rois: every level pooled, the
        roi's own level kept."""
        extractor = self.model.roi_head.bbox_roi_extractor
        feats = feats[:extractor.num_inputs]
        layers = extractor.roi_layers
        if len(feats) == 1:
            return self._align(layers[0], feats[0], rois)
        levels = extractor.map_roi_levels(rois, len(feats))
        out = None
        for index, (layer, level_feats) in enumerate(zip(layers, feats)):
            pooled = self._align(layer, level_feats, rois)
            here = (levels == index).view(-1, 1, 1, 1)
            out = pooled if out is None else torch.where(here, pooled, out)
        return out

    @staticmethod
    def _align(layer: RoIAlign, feats: torch.Tensor, rois: torch.Tensor):
        return roi_align(feats, rois, int(layer.output_size[0]),
                         float(layer.spatial_scale), int(layer.sampling_ratio))

    def forward(self,
                image: torch.Tensor,
                image_shape: torch.Tensor,
                scale_factor: torch.Tensor,
                presence: Optional[torch.Tensor] = None) -> tuple:
        model = self.model
        feats = self.features(image, presence)
        proposals, proposal_valid = self.proposals(feats, image_shape)
        batch, count = proposals.shape[:2]
        image_index = torch.arange(
            batch, dtype=proposals.dtype,
            device=proposals.device).view(-1, 1, 1).expand(-1, count, 1)
        rois = torch.cat([image_index, proposals], dim=-1).reshape(-1, 5)
        box_head = model.roi_head.bbox_head
        cls_score, bbox_pred = box_head(self.pooled(feats, rois))
        scores = F.softmax(cls_score, dim=-1)[:, :-1]  # background last
        classes = scores.shape[1]
        per_class = 1 if box_head.reg_class_agnostic else box_head.num_classes
        boxes = box_head.bbox_coder.decode(
            rois[:, 1:].repeat_interleave(per_class, dim=0),
            bbox_pred.reshape(-1, box_head.bbox_coder.encode_size))
        boxes = boxes.reshape(batch, count, per_class, 4)
        if per_class == 1:
            boxes = boxes.expand(-1, -1, classes, -1)
        boxes = boxes.reshape(batch, count * classes, 4)
        if getattr(box_head.bbox_coder, 'clip_border', True):
            boxes = clip_boxes(boxes, image_shape)
        boxes = rescale_boxes(boxes, scale_factor)
        cfg = model.roi_head.test_cfg
        scores = scores.reshape(batch, count * classes)
        labels = torch.arange(
            classes, device=scores.device).view(1, 1, -1).expand(batch, count,
                                                                 -1).reshape(batch, -1)
        valid = (scores > float(cfg['score_thr'])) & \
            proposal_valid.unsqueeze(-1).expand(-1, -1, classes).reshape(batch, -1)
        return nms_and_top(boxes, scores, labels, valid, cfg)
