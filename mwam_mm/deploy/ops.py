"""Operators of the exported graphs that torch has no ONNX form for.

Each is a ``torch.library`` custom operator with an eager implementation (mmcv's
kernels, so the export module computes in PyTorch exactly what mmdet does) and a
translation into standard ONNX operators, passed to ``torch.onnx.export`` as
``custom_translation_table`` (:data:`ONNX_TRANSLATIONS`). Their outputs have
static shapes, so no data-dependent size reaches ``torch.export``.
"""
import torch
from mmcv.ops import nms as mmcv_nms
from mmcv.ops import roi_align as mmcv_roi_align
from onnxscript import opset18 as op


@torch.library.custom_op('mwam_mm::nms_keep', mutates_args=())
def nms_keep(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
             score_threshold: float) -> torch.Tensor:
    """Which candidates non-maximum suppression keeps, per image.

    Args:
        boxes (Tensor): ``(B, N, 4)`` boxes ``x1, y1, x2, y2`` (classes already
            separated by coordinate offsets, as mmdet's ``batched_nms``).
        scores (Tensor): ``(B, N)``; candidates scoring ``<= score_threshold``
            are dropped before suppression.
        iou_threshold (float): A candidate overlapping a kept, higher-scoring one
            by more than this IoU is suppressed.
        score_threshold (float): See ``scores``.

    Returns:
        Tensor: ``(B, N)`` bool, True where kept.
    """
    keep = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    for b in range(boxes.shape[0]):
        valid = torch.nonzero(scores[b] > score_threshold).view(-1)
        if valid.numel() == 0:
            continue
        _, kept = mmcv_nms(boxes[b, valid], scores[b, valid], iou_threshold)
        keep[b, valid[kept]] = True
    return keep


@nms_keep.register_fake
def _nms_keep_shape(boxes, scores, iou_threshold, score_threshold):
    return torch.empty(scores.shape, dtype=torch.bool, device=scores.device)


def nms_keep_onnx(boxes, scores, iou_threshold: float, score_threshold: float):
    """:func:`nms_keep` as ONNX ``NonMaxSuppression`` and a scatter."""
    max_per_class = op.Shape(boxes, start=1, end=2)  # every candidate may stay
    selected = op.NonMaxSuppression(boxes, op.Unsqueeze(scores, [1]), max_per_class,
                                    op.Constant(value_floats=[iou_threshold]),
                                    op.Constant(value_floats=[score_threshold]))
    # rows (image, class, candidate); the single class is 0
    where = op.Gather(selected, op.Constant(value_ints=[0, 2]), axis=1)
    ones = op.Expand(
        op.Constant(value_floats=[1.0]), op.Shape(selected, start=0, end=1))
    mask = op.ScatterND(op.Mul(scores, op.Constant(value_float=0.0)), where, ones)
    return op.Cast(mask, to=9)  # BOOL


@torch.library.custom_op('mwam_mm::roi_align', mutates_args=())
def roi_align(features: torch.Tensor, rois: torch.Tensor, output_size: int,
              spatial_scale: float, sampling_ratio: int) -> torch.Tensor:
    """mmcv's ``RoIAlign`` (``aligned=True``, average pooling) on ``rois``
    (``(K, 5)``: image index, ``x1, y1, x2, y2``); ``(K, C, S, S)``."""
    return mmcv_roi_align(features, rois, (output_size, output_size), spatial_scale,
                          sampling_ratio, 'avg', True)


@roi_align.register_fake
def _roi_align_shape(features, rois, output_size, spatial_scale, sampling_ratio):
    return features.new_empty(
        (rois.shape[0], features.shape[1], output_size, output_size))


def roi_align_onnx(features, rois, output_size: int, spatial_scale: float,
                   sampling_ratio: int):
    """:func:`roi_align` as ONNX ``RoiAlign`` (opset 16+, half-pixel
    coordinates: mmcv's ``aligned=True``)."""
    batch_indices = op.Cast(
        op.Squeeze(
            op.Slice(rois, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]),
                     op.Constant(value_ints=[1])), op.Constant(value_ints=[1])),
        to=7)  # INT64
    boxes = op.Slice(rois, op.Constant(value_ints=[1]), op.Constant(value_ints=[5]),
                     op.Constant(value_ints=[1]))
    return op.RoiAlign(
        features,
        boxes,
        batch_indices,
        coordinate_transformation_mode='half_pixel',
        mode='avg',
        output_height=output_size,
        output_width=output_size,
        sampling_ratio=sampling_ratio,
        spatial_scale=spatial_scale)


ONNX_TRANSLATIONS = {
    torch.ops.mwam_mm.nms_keep.default: nms_keep_onnx,
    torch.ops.mwam_mm.roi_align.default: roi_align_onnx,
}
