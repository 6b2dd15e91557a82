# MWAM 'hybrid' (the paper's best setting) on RetinaNet: an auxiliary head per
# modality (shared neck; RGBTSingleStageDetector), MWAM weighting both the branch
# gradients and the per-modality auxiliary losses.
method_model = dict(type='RGBTSingleStageDetector', aux_loss_weight=1.0)
custom_hooks = [dict(type='MWAMHook', preset='paper', apply='hybrid')]
