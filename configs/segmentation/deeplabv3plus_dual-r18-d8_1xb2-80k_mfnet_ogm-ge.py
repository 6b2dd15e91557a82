_base_ = [
    './deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py', '../_base_/methods/ogm-ge_80k.py'
]
