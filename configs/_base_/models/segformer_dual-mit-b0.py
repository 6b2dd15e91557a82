# mmseg's SegFormer on two MiT-b0 streams (RGB 3 channels, thermal 1 channel), from
# scratch; for ImageNet weights give each stream a local checkpoint through
# model.backbone.streams.<modality>.init_cfg (nothing is downloaded).
_base_ = 'mmseg::_base_/models/segformer_mit-b0.py'

model = dict(
    # mmseg's EncoderDecoder plus per-modality outputs; with aux_loss_weight > 0
    # an auxiliary decode head per modality (RSC), see RGBTEncoderDecoder
    type='RGBTEncoderDecoder',
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
            type='MixVisionTransformer',
            embed_dims=32,
            num_stages=4,
            num_layers=[2, 2, 2, 2],
            num_heads=[1, 2, 5, 8],
            patch_sizes=[7, 3, 3, 3],
            sr_ratios=[8, 4, 2, 1],
            out_indices=(0, 1, 2, 3),
            mlp_ratio=4,
            qkv_bias=True,
            drop_rate=0.0,
            attn_drop_rate=0.0,
            drop_path_rate=0.1),
        fusion=dict(type='AddFusion')),
    decode_head=dict(norm_cfg=dict(type='BN', requires_grad=True)))
