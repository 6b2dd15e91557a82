_base_ = 'mmseg::_base_/default_runtime.py'

custom_imports = dict(imports=['mwam_mm'], allow_failed_imports=False)
# tools/train.py switches to gloo when no GPU is available
env_cfg = dict(dist_cfg=dict(backend='nccl'))
