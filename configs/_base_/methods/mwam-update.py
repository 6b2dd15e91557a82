# MWAM scaling the branch updates (the paper's Algorithm 1) instead of the
# gradients: what an adaptive optimiser (AdamW normalises gradients) needs.
custom_hooks = [dict(type='MWAMHook', preset='paper', apply='update')]
