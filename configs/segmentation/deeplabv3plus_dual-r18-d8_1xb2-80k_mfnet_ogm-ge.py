# OGM-GE (Peng et al., CVPR 2022): the dominant modality's conv-kernel gradients
# scaled by 1 - tanh(alpha * rho), Gaussian noise of the gradient's own std added
# (GE), during the first half of training (40000 of 80000 iterations), as the original
# (epochs 0-50 of 100). The unimodal scores come from the shared head applied to
# each modality's view of the fused features (no auxiliary heads needed).
_base_ = './deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py'

custom_hooks = [dict(type='OGMGEHook', window=(0, 40000), by_epoch=False)]
