# The demo detector: RetinaNet on two slim ResNet-18 streams (16 base channels), for
# the 160x128 synthetic scenes, trained from scratch on a 2-core CPU in minutes.
# Finer pyramid (P2-P6, strides 4-64) and tall/wide anchors for small pedestrians
# and wide vehicles.
_base_ = [
    '../_base_/models/retinanet_dual-r18_fpn.py',
    '../_base_/datasets/synthetic_rgbt.py', '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(backbone=dict(base_channels=16)),
    neck=dict(
        in_channels=[16, 32, 64, 128], out_channels=64, start_level=0, num_outs=5),
    bbox_head=dict(
        num_classes=2,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        anchor_generator=dict(ratios=[0.5, 1.0, 2.5], strides=[4, 8, 16, 32, 64])))

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
# lr 0.02 diverged on some seeds from scratch (full-modality mAP50 0.03-0.78 over
# seeds 0-3); 0.01 trained the failing seeds to 0.84 and 0.76
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=max_epochs))
log_processor = dict(window_size=10)
