_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['mwam_mm'], allow_failed_imports=False)
# tools/train.py switches to gloo when no GPU is available
env_cfg = dict(dist_cfg=dict(backend='nccl'))
# RGB-T visualiser (mwam_mm.visualization): RGB and thermal side by side (or blended:
# blend_alpha=0.5) with the same masks on both, ground truth left, prediction right.
# The visualisation hook comes with mmseg's schedule (default_hooks cannot be set in
# two bases): for validation images set, in your config,
#   default_hooks = dict(visualization=dict(type='RGBTSegVisualizationHook', draw=True))
# (tools/test.py --show-dir does it by itself). TensorBoard: see default_runtime.py.
visualizer = dict(type='RGBTSegLocalVisualizer')
