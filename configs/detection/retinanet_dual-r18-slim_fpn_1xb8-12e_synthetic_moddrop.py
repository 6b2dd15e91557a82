# Modality dropout baseline: one modality blanked in half of the training samples.
_base_ = './retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PerModality',
        modality='rgb',
        transforms=[dict(type='PhotoMetricDistortion')]),
    dict(type='ModalityDropout', prob=0.5, fill='zero'),
    dict(type='PackDetInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
