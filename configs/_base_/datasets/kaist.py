# KAIST multispectral pedestrians (visible + lwir pairs, 640x512). Set data_root and
# the image lists (lines like set06/V000/I00019; the usual test list is the 2,252
# frames of test-all-20.txt). Annotations: the released annotations/setXX/VYYY/
# I*.txt; for a flat folder of setXX_VYYY_I*.txt (sanitized / improved annotations)
# set data_prefix.ann to it and ann_layout='flat'.
dataset_type = 'KAISTDataset'
data_root = 'data/kaist-cvpr15/'
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
        # kaist_objects: labels, occlusion and unclipped boxes for the metric
        meta_keys=('img_id', 'img_path', 'thermal_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'kaist_objects'))
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
        ann_file='imageSets/train-all-02.txt',
        data_prefix=dict(img='images', ann='annotations'),
        ann_layout='nested',
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
        ann_file='imageSets/test-all-20.txt',
        data_prefix=dict(img='images', ann='annotations'),
        ann_layout='nested',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# log-average miss rate, FPPI 1e-2..1: kaist/MR_reasonable, kaist/MR_all (+ day/night)
val_evaluator = dict(type='KAISTMissRate')
test_evaluator = val_evaluator
