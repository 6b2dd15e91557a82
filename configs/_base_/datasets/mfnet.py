# MFNet (RGBA PNG: RGB + thermal, 640x480, 9 classes). Set data_root only.
dataset_type = 'MFNetDataset'
data_root = 'data/MFNet/'
crop_size = (480, 640)

train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadRGBTSegAnnotations'),
    dict(
        type='RandomResize', scale=(640, 480), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PerModality',
        modality='rgb',
        transforms=[dict(type='PhotoMetricDistortion')]),
    dict(
        type='PackSegInputs',
        # sample_idx: per-sample state of training hooks (BTW's weights)
        meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
                   'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
                   'sample_idx'))
]
test_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='Resize', scale=(640, 480), keep_ratio=True),
    dict(type='LoadRGBTSegAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train.txt',
        data_prefix=dict(img='images', seg='labels'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.txt',
        data_prefix=dict(img='images', seg='labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
