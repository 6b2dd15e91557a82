# mmdet's Faster R-CNN on two ResNet-18 streams (RGB + 1-channel thermal), trained
# from scratch; see retinanet_dual-r18_fpn.py for local pretrained weights.
# RGBTTwoStageDetector: mmdet's FasterRCNN (TwoStageDetector) with the defaults, plus
# per-modality scores and, with aux_loss_weight > 0, auxiliary RoI box heads.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

model = dict(
    type='RGBTTwoStageDetector',
    # a camera whose test frame is constant (spread <= 2 of 255) is treated as
    # missing: a dead camera sends black frames and nobody says so
    data_preprocessor=dict(
        _delete_=True,
        type='RGBTDetDataPreprocessor',
        pad_size_divisor=32,
        dead_camera=dict(tolerance=2)),
    backbone=dict(
        _delete_=True,
        type='DualStreamBackbone',
        backbone=dict(
            type='ResNet',
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch'),
        fusion=dict(type='ConcatConvFusion')),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes=1)))
