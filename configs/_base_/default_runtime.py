default_scope = 'mmdet'
custom_imports = dict(imports=['mwam_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RGB-T hook: draws the stacked pair (RGB | thermal); draw=True to use it,
    # tools/test.py --show-dir switches it on
    visualization=dict(type='RGBTDetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when no GPU is available
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
# TensorBoard as well as the log (needs the `tensorboard` package, in
# requirements/runtime.txt): losses, learning rate, validation metrics and the
# balancing hooks' scalars (mwam_k_<modality>, mwam_frm_<modality>,
# grad_norm_<modality>) go to every backend through the LoggerHook; the events
# file is written under <work_dir>/<timestamp>/vis_data/ (`tensorboard --logdir
# work_dirs`). In your config (or --cfg-options):
#   vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
#   visualizer = dict(vis_backends=vis_backends)
# RGB-T visualiser (mwam_mm.visualization): RGB and thermal side by side (or
# blended: blend_alpha=0.5) with the same boxes on both, ground truth left and
# prediction right
visualizer = dict(
    type='RGBTDetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
