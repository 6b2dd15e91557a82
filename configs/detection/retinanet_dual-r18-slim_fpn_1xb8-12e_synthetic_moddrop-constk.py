_base_ = [
    './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_moddrop.py',
    '../_base_/methods/constk.py'
]
