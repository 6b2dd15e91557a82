"""A UTF-8 byte-order mark at the start of a split list or an annotation file (as
Windows editors write it) is not part of the first name or line."""
import json
import os.path as osp

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (FLIRAlignedDataset, KAISTDataset, LLVIPDataset,
                              M3FDDataset, MFNetDataset, parse_kaist_annotation)
from tests.helpers.layouts import write_flir, write_m3fd, write_mfnet
from tests.test_datasets._tiny_layouts import (copy_kaist, llvip_prefix, write_llvip,
                                               write_text)


def ids(ds):
    return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]


def test_llvip_split_file_with_bom(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    write_text(osp.join(root, 'split.txt'), '010001\n010003\n', bom=True)
    ds = LLVIPDataset(
        data_root=root, data_prefix=llvip_prefix(), ann_file='split.txt', pipeline=[])
    assert ids(ds) == ['010001', '010003']


def test_m3fd_split_file_with_bom(tmp_path):
    root = write_m3fd(str(tmp_path))
    write_text(osp.join(root, 'test.txt'), '00003\n00004\n', bom=True)
    assert ids(M3FDDataset(data_root=root, ann_file='test.txt',
                           pipeline=[])) == ['00003', '00004']


def test_flir_split_file_with_bom(tmp_path):
    root = write_flir(str(tmp_path))
    write_text(osp.join(root, 'align_train.txt'), 'FLIR_00001_PreviewData\n', bom=True)
    ds = FLIRAlignedDataset(data_root=root, ann_file='align_train.txt', pipeline=[])
    assert ids(ds) == ['FLIR_00001_PreviewData']


def test_flir_coco_json_with_bom(tmp_path):
    root = write_flir(str(tmp_path))
    path = osp.join(root, 'Annotation_train.json')
    write_text(path, json.dumps(json.load(open(path))), bom=True)
    ds = FLIRAlignedDataset(
        data_root=root, ann_file='Annotation_train.json', pipeline=[])
    assert len(ds) == 6


def test_mfnet_split_file_with_bom(tmp_path):
    root = write_mfnet(str(tmp_path))
    write_text(osp.join(root, 'train.txt'), '00000D\n00001N\n', bom=True)
    ds = MFNetDataset(data_root=root, ann_file='train.txt', pipeline=[])
    assert ids(ds) == ['00000D', '00001N']


def test_kaist_annotation_with_bom(tmp_path):
    root = copy_kaist(tmp_path / 'kaist')
    ann = osp.join(root, 'annotations/set06/V000/I00019.txt')
    write_text(ann, open(ann).read(), bom=True)
    objects = parse_kaist_annotation(ann)
    assert [o['label'] for o in objects][:2] == ['person', 'person']
    ds = KAISTDataset(
        data_root=root, ann_file='imageSets/test-mini.txt', pipeline=[], test_mode=True)
    assert ds.get_data_info(0)['img_id'] == 'set06/V000/I00019'
    assert len(ds.get_data_info(0)['kaist_objects']) == len(objects)


def test_kaist_image_list_with_bom(tmp_path):
    root = copy_kaist(tmp_path / 'kaist')
    listing = osp.join(root, 'imageSets/test-mini.txt')
    write_text(listing, open(listing).read(), bom=True)
    ds = KAISTDataset(
        data_root=root, ann_file='imageSets/test-mini.txt', pipeline=[], test_mode=True)
    assert ids(ds)[0] == 'set06/V000/I00019'
    assert len(ds) == 4
