# AdamW normalises gradients, so MWAM scales the updates (the paper's Algorithm 1)
_base_ = [
    './segformer_dual-mit-b0_1xb2-160k_fmb.py', '../_base_/methods/mwam-update.py'
]
