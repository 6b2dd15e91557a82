# MWAM scaling the branch updates (the paper's Algorithm 1) instead of the gradients.
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

custom_hooks = [dict(type='MWAMHook', preset='paper', apply='update')]
