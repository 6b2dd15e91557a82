# Analysis control of MWAM (benchmarks/mwam_ablation.py, arm C, on top of
# moddrop.py): a constant gradient weight per branch, a per-branch learning-rate
# cut without FRM's dynamics. The benchmark sets the weights to its arm B's logged
# mean K; the values here are that mean in the README's run (2026-12-01: 12
# epochs, seeds 0-4).
custom_hooks = [dict(type='BranchWeightHook', weights=dict(rgb=1.0014, thermal=1.2424))]
