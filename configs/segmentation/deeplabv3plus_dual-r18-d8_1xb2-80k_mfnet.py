_base_ = [
    '../_base_/models/deeplabv3plus_dual-r18-d8.py', '../_base_/datasets/mfnet.py',
    '../_base_/seg_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]

model = dict(decode_head=dict(num_classes=9), auxiliary_head=dict(num_classes=9))
