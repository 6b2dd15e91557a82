# M3FD (Vis + Ir pairs, mostly 1024x768, 6 classes). Set data_root and the split files
# (M3FD has no official split: one name per line, e.g. a 2,940 / 1,260 split). The
# pipelines, loaders and metric are LLVIP's, but for M3FD's 4:3 images resized to
# 640x480; the dataset and its files differ.
_base_ = './llvip.py'

dataset_type = 'M3FDDataset'
data_root = 'data/M3FD/'

train_pipeline = [
    dict(step, scale=(640, 480)) if step['type'] == 'Resize' else step
    for step in _base_.train_pipeline
]
test_pipeline = [
    dict(step, scale=(640, 480)) if step['type'] == 'Resize' else step
    for step in _base_.test_pipeline
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='trainval.txt',
        data_prefix=dict(img='Vis', thermal='Ir', ann='Annotation'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='test.txt',
        data_prefix=dict(img='Vis', thermal='Ir', ann='Annotation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
