# FLIR ADAS aligned (640x512; person, car, bicycle), VOC form. Set data_root only;
# for the COCO-JSON redistributions set ann_file to the .json and data_prefix
# img/thermal. The pipelines, loaders and metric are LLVIP's (same image size and
# annotation form); only the dataset and its files differ.
_base_ = './llvip.py'

dataset_type = 'FLIRAlignedDataset'
data_root = 'data/FLIR_aligned/'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='align_train.txt',
        data_prefix=dict(img='JPEGImages', thermal='JPEGImages', ann='Annotations')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='align_validation.txt',
        data_prefix=dict(img='JPEGImages', thermal='JPEGImages', ann='Annotations')))
test_dataloader = val_dataloader
