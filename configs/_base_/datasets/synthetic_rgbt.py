# The built-in synthetic RGB-T street scenes (tools/make_synthetic_rgbt.py), written in
# the LLVIP layout and read by the real LLVIP loader. 160x128 images, two classes.
_base_ = './llvip.py'

data_root = 'data/synthetic_rgbt/'
metainfo = dict(classes=('person', 'vehicle'), palette=[(220, 20, 60), (0, 0, 142)])

train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadAnnotations', with_bbox=True),
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
    dict(type='LoadRGBTImagePair'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'thermal_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    num_workers=1,
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
