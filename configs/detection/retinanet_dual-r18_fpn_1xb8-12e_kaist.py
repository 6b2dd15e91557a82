_base_ = [
    '../_base_/models/retinanet_dual-r18_fpn.py', '../_base_/datasets/kaist.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]

model = dict(bbox_head=dict(num_classes=1))
