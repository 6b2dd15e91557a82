# The built-in synthetic RGB-T street scenes for segmentation
# (tools/make_synthetic_rgbt.py --task segmentation): the detection data's scenes, with
# every object's visible pixels labelled, written in the MFNet layout (RGBA PNG, label
# PNG in MFNet's ids) and read by the real MFNet loader. 160x128 images, 3 classes:
# MFNet's unlabeled (background), car (the vehicles) and person.
_base_ = './mfnet.py'

data_root = 'data/synthetic_rgbt_seg/'
metainfo = dict(
    classes=('unlabeled', 'car', 'person'),
    palette=[[0, 0, 0], [64, 0, 128], [64, 64, 0]])

# the synthetic detector's augmentation: flips and RGB photometric distortion
train_pipeline = [
    dict(type='LoadRGBTImagePair'),
    dict(type='LoadRGBTSegAnnotations'),
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
    dict(type='Resize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadRGBTSegAnnotations'),
    dict(type='PackSegInputs')
]
# trained by epochs, as the synthetic detector
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
