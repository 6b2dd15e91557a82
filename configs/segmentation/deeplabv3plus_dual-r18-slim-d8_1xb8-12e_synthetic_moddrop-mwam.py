# MWAM as its authors run it: on top of feature-level modality dropout.
_base_ = [
    './deeplabv3plus_dual-r18-slim-d8_1xb8-12e_synthetic_moddrop.py',
    '../_base_/methods/mwam.py'
]
