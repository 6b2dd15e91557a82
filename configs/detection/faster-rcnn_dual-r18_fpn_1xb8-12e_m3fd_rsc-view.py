_base_ = [
    './faster-rcnn_dual-r18_fpn_1xb8-12e_m3fd.py', '../_base_/methods/rsc-view.py'
]
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
