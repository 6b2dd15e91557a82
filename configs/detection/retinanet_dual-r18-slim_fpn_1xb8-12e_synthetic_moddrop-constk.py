# Analysis control of MWAM (benchmarks/mwam_ablation.py, arm C): modality dropout with
# a constant gradient weight per branch, a per-branch learning-rate cut without FRM's
# dynamics. The benchmark sets the weights to MWAM's logged mean K of its arm B run;
# the values here are that mean from the run quoted in docs (README, MWAM ablation).
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_moddrop.py'

custom_hooks = [dict(type='BranchWeightHook', weights=dict(rgb=0.64, thermal=0.64))]
