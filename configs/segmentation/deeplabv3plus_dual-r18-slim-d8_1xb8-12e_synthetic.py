# The segmentation family of the built-in benchmark: DeepLabV3+ on two slim ResNet-18
# streams (16 base channels, output stride 8) for the 160x128 synthetic scenes in the
# MFNet layout, trained from scratch by epochs on a 2-core CPU in minutes, with the
# synthetic detector's schedule. The ASPP dilations fit the 20x16 feature map (mmseg's
# 12/24/36 would see only padding beyond the centre tap).
_base_ = [
    '../_base_/models/deeplabv3plus_dual-r18-d8.py',
    '../_base_/datasets/synthetic_rgbt_seg.py', '../_base_/seg_runtime.py',
    '../_base_/schedules/schedule_1x.py'
]

model = dict(
    backbone=dict(backbone=dict(stem_channels=16, base_channels=16)),
    decode_head=dict(
        in_channels=128,
        channels=32,
        c1_in_channels=16,
        c1_channels=8,
        dilations=(1, 2, 4, 6),
        num_classes=3),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=3))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        eta_min_ratio=0.05)
]
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
# mmseg's hooks, by epoch (its schedules, which set them, count iterations)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=True, interval=max_epochs),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RGBTSegVisualizationHook'))
log_processor = dict(by_epoch=True, window_size=10)
