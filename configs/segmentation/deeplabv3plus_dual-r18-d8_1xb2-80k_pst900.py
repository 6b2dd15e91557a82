_base_ = [
    '../_base_/models/deeplabv3plus_dual-r18-d8.py', '../_base_/datasets/pst900.py',
    '../_base_/seg_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]

model = dict(decode_head=dict(num_classes=5), auxiliary_head=dict(num_classes=5))
