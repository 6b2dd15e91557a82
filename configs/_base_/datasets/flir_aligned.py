# FLIR ADAS aligned (640x512; person, car, bicycle), VOC form. Set data_root only;
# for the COCO-JSON redistributions set ann_file to the .json and data_prefix
# img/thermal.
dataset_type = 'FLIRAlignedDataset'
data_root = 'data/FLIR_aligned/'
backend_args = None

train_pipeline = [
    dict(type='LoadRGBTImagePair', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(640, 512), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PerModality',
        modality='rgb',
        transforms=[dict(type='PhotoMetricDistortion')]),
    dict(
        type='PackDetInputs',
        # sample_idx: per-sample state of training hooks (BTW's weights)
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                   'flip', 'flip_direction', 'sample_idx'))
]
test_pipeline = [
    dict(type='LoadRGBTImagePair', backend_args=backend_args),
    dict(type='Resize', scale=(640, 512), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'thermal_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='ResumableSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='align_train.txt',
        data_prefix=dict(img='JPEGImages', thermal='JPEGImages', ann='Annotations'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='align_validation.txt',
        data_prefix=dict(img='JPEGImages', thermal='JPEGImages', ann='Annotations'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator
