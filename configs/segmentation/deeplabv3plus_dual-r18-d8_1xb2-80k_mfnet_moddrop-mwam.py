# MWAM as its authors run it: on top of feature-level modality dropout.
_base_ = [
    './deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet_moddrop.py', '../_base_/methods/mwam.py'
]
