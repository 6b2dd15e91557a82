# BTW (Hou et al., 2025): per-sample, per-modality feature weights KL_norm x MI,
# from each modality's disagreement with the fused prediction, refreshed by a
# pass over the training set every 2 epochs (the demo and benchmark train 5 to 12
# epochs, and BTW does not refresh after the last), smoothed with a fixed factor,
# applied before fusion in training only (weight 1 at test).
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

custom_hooks = [dict(type='BTWHook', interval=2)]
