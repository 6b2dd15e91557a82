# mmdet's RetinaNet on two ResNet-18 streams (RGB 3 channels, thermal 1 channel),
# trained from scratch. For ImageNet weights from a local file, give each stream
# init_cfg=dict(type='Pretrained', checkpoint='/path/to/resnet18.pth') in
# model.backbone.streams; nothing is downloaded (the model-zoo init of mmdet's base
# backbone goes with _delete_).
# RGBTSingleStageDetector: mmdet's RetinaNet (SingleStageDetector) with the defaults,
# plus per-modality scores and, with aux_loss_weight > 0, auxiliary heads.
_base_ = 'mmdet::_base_/models/retinanet_r50_fpn.py'

model = dict(
    type='RGBTSingleStageDetector',
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
    bbox_head=dict(num_classes=1))
