_base_ = [
    '../_base_/models/segformer_dual-mit-b0.py',
    '../_base_/datasets/mfnet.py', '../_base_/seg_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]

model = dict(decode_head=dict(num_classes=9))
# SegFormer's schedule: AdamW, poly decay after a linear warm-up
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys=dict(
            pos_block=dict(decay_mult=0.), norm=dict(decay_mult=0.))))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]
