_base_ = [
    '../_base_/models/segformer_dual-mit-b0.py', '../_base_/datasets/fmb.py',
    '../_base_/seg_runtime.py', '../_base_/schedules/segformer_adamw-160k.py'
]

model = dict(decode_head=dict(num_classes=14))
