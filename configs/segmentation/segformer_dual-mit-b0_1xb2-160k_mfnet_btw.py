_base_ = [
    './segformer_dual-mit-b0_1xb2-160k_mfnet.py',
    '../_base_/methods/btw_every-10k-iters.py'
]
