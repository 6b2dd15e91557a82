# FMB (Visible/, Infrared/, Label/ per split; 800x600, 14 classes + unlabeled,
# reduce_zero_label). Set data_root only.
_base_ = './mfnet.py'

dataset_type = 'FMBDataset'
data_root = 'data/FMB/'
crop_size = (480, 640)

train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadRGBTSegAnnotations'),
    dict(
        type='RandomResize', scale=(800, 600), ratio_range=(0.5, 2.0), keep_ratio=True),
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
    dict(type='Resize', scale=(800, 600), keep_ratio=True),
    dict(type='LoadRGBTSegAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='',
        data_prefix=dict(
            img='train/Visible', thermal='train/Infrared', seg='train/Label'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='',
        data_prefix=dict(img='test/Visible', thermal='test/Infrared', seg='test/Label'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
