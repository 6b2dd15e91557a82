_base_ = ['./retinanet_dual-r18_fpn_1xb8-12e_kaist.py', '../_base_/methods/mwam.py']
