_base_ = ['./deeplabv3plus_dual-r18-d8_1xb2-80k_pst900.py', '../_base_/methods/mwam.py']
