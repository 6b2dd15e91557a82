# BTW (Hou et al., 2025): per-sample, per-modality feature weights KL_norm x MI,
# from each modality's disagreement with the fused prediction, refreshed by a
# pass over the training set every 10000 iterations, smoothed with a fixed
# factor, applied before fusion in training only (weight 1 at test).
_base_ = './segformer_dual-mit-b0_1xb2-160k_mfnet.py'

custom_hooks = [dict(type='BTWHook', interval=10000, by_epoch=False)]
