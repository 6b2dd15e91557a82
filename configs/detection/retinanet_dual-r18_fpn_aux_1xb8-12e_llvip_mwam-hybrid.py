# RetinaNet with an auxiliary head per modality (shared neck), and MWAM weighting
# both the branch gradients and the per-modality auxiliary losses (the paper's best
# setting, 'hybrid').
_base_ = './retinanet_dual-r18_fpn_1xb8-12e_llvip.py'

model = dict(type='RGBTSingleStageDetector', aux_loss_weight=1.0)
custom_hooks = [dict(type='MWAMHook', preset='paper', apply='hybrid')]
