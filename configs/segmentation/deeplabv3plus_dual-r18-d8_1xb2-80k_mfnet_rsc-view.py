_base_ = [
    './deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py', '../_base_/methods/rsc-view.py'
]
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
