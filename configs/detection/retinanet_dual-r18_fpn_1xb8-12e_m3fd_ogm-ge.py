_base_ = ['./retinanet_dual-r18_fpn_1xb8-12e_m3fd.py', '../_base_/methods/ogm-ge.py']
