_base_ = ['./faster-rcnn_dual-r18_fpn_1xb8-12e_llvip.py', '../_base_/methods/ogm-ge.py']
