_base_ = [
    './deeplabv3plus_dual-r18-slim-d8_1xb8-12e_synthetic.py',
    '../_base_/methods/cmpt.py'
]
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
