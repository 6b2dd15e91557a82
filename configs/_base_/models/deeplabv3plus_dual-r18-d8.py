# mmseg's DeepLabV3+ on two dilated ResNet-18 (V1c) streams (RGB 3 channels, thermal
# 1 channel), from scratch (pretrained=None: nothing is downloaded). BN instead of
# SyncBN so that single-process CPU training works; use SyncBN under DDP if wanted.
_base_ = 'mmseg::_base_/models/deeplabv3plus_r50-d8.py'

model = dict(
    # mmseg's EncoderDecoder plus per-modality outputs; with aux_loss_weight > 0
    # an auxiliary decode head per modality (RSC), see RGBTEncoderDecoder
    type='RGBTEncoderDecoder',
    pretrained=None,
    # a camera whose test frame is constant (spread <= 2 of 255) is treated as
    # missing: a dead camera sends black frames and nobody says so
    data_preprocessor=dict(
        _delete_=True,
        type='RGBTSegDataPreprocessor',
        size_divisor=32,
        dead_camera=dict(tolerance=2)),
    backbone=dict(
        _delete_=True,
        type='DualStreamBackbone',
        backbone=dict(
            type='ResNetV1c',
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            dilations=(1, 1, 2, 4),
            strides=(1, 2, 1, 1),
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch',
            contract_dilation=True),
        fusion=dict(type='ConcatConvFusion')),
    decode_head=dict(
        in_channels=512,
        channels=128,
        c1_in_channels=64,
        c1_channels=12,
        norm_cfg=dict(type='BN', requires_grad=True)),
    auxiliary_head=dict(
        in_channels=256, channels=64, norm_cfg=dict(type='BN', requires_grad=True)))
