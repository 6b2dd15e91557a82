# MWAM (paper preset): per iteration each modality's branch gradients are scaled by
# K, from the branches' frequency ratio metric (FRM) of their inputs, so that the
# dominant modality learns more slowly.
custom_hooks = [dict(type='MWAMHook', preset='paper', apply='grad')]
