_base_ = './faster-rcnn_dual-r18_fpn_1xb8-12e_kaist.py'

custom_hooks = [dict(type='MWAMHook', preset='paper', apply='grad')]
