_base_ = './retinanet_dual-r18_fpn_1xb8-12e_flir_aligned.py'

custom_hooks = [dict(type='MWAMHook', preset='paper', apply='grad')]
