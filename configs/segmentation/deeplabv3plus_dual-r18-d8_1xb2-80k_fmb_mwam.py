_base_ = ['./deeplabv3plus_dual-r18-d8_1xb2-80k_fmb.py', '../_base_/methods/mwam.py']
