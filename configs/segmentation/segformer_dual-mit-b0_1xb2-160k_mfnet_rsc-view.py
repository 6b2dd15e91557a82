_base_ = ['./segformer_dual-mit-b0_1xb2-160k_mfnet.py', '../_base_/methods/rsc-view.py']
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
