# PST900 (rgb/, thermal/, labels/ per split; 1280x720, 5 classes). Set data_root only.
_base_ = './mfnet.py'

dataset_type = 'PST900Dataset'
data_root = 'data/PST900_RGBT_Dataset/'
crop_size = (360, 640)

train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadRGBTSegAnnotations'),
    dict(
        type='RandomResize', scale=(640, 360), ratio_range=(0.5, 2.0), keep_ratio=True),
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
    dict(type='Resize', scale=(640, 360), keep_ratio=True),
    dict(type='LoadRGBTSegAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='',
        data_prefix=dict(img='train/rgb', thermal='train/thermal', seg='train/labels'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='',
        data_prefix=dict(img='test/rgb', thermal='test/thermal', seg='test/labels'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
