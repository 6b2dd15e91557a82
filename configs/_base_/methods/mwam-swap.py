# Analysis control of MWAM (benchmarks/mwam_ablation.py, arm D, on top of
# moddrop.py): each branch given the other branch's K every iteration (FRM's
# dynamics with the roles reversed).
custom_hooks = [dict(type='MWAMHook', preset='paper', apply='grad', swap_weights=True)]
