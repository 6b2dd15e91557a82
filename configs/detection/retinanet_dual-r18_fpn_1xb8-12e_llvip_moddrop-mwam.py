# MWAM as its authors run it: on top of feature-level modality dropout.
_base_ = [
    './retinanet_dual-r18_fpn_1xb8-12e_llvip_moddrop.py', '../_base_/methods/mwam.py'
]
