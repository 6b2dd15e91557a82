# OGM-GE (Peng et al., CVPR 2022): the dominant modality's conv-kernel gradients
# scaled by 1 - tanh(alpha * rho), Gaussian noise of the gradient's own std added
# (GE), during the first half of training (6 of 12 epochs), as the original
# (epochs 0-50 of 100). The unimodal scores come from the shared head applied to
# each modality's view of the fused features (no auxiliary heads needed).
custom_hooks = [dict(type='OGMGEHook', window=(0, 6), by_epoch=True)]
