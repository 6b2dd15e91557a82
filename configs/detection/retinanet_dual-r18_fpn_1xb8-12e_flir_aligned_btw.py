_base_ = [
    './retinanet_dual-r18_fpn_1xb8-12e_flir_aligned.py',
    '../_base_/methods/btw_every-5e.py'
]
