# BTW (Hou et al., 2025): per-sample, per-modality feature weights KL_norm x MI,
# from each modality's disagreement with the fused prediction, refreshed by a pass
# over the training set, smoothed with a fixed factor, applied before fusion in
# training only (weight 1 at test). Refreshed every 2 epochs: the demo and the
# benchmark train 5 to 12 epochs, and BTW does not refresh after the last.
custom_hooks = [dict(type='BTWHook', interval=2)]
