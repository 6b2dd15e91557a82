# Analysis control of MWAM (benchmarks/mwam_ablation.py, arm D): MWAM on modality
# dropout with each branch given the other branch's K every iteration (FRM's
# dynamics with the roles reversed).
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_moddrop-mwam.py'

custom_hooks = [dict(type='MWAMHook', preset='paper', apply='grad', swap_weights=True)]
