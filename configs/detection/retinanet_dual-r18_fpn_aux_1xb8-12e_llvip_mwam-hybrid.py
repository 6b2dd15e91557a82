# RetinaNet with an auxiliary head per modality (shared neck) and MWAM
# 'hybrid' (the paper's best setting)
_base_ = [
    './retinanet_dual-r18_fpn_1xb8-12e_llvip.py', '../_base_/methods/mwam-hybrid.py'
]
model = _base_.pop('method_model')  # see configs/_base_/methods/README.md
