"""A sample listed twice in a split file is refused by every dataset, naming the
file, the entry and its lines (it would count twice in training and the metric)."""
import json
import os.path as osp

import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (FLIRAlignedDataset, KAISTDataset, LLVIPDataset,
                              M3FDDataset, MFNetDataset)
from tests.helpers.layouts import write_flir, write_m3fd, write_mfnet
from tests.test_datasets._tiny_layouts import (copy_kaist, llvip_prefix, write_llvip,
                                               write_text)


def llvip_split(root):
    return LLVIPDataset(
        data_root=root, data_prefix=llvip_prefix(), ann_file='split.txt', pipeline=[])


def test_llvip_split_file_with_a_repeated_sample_is_refused(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    split = osp.join(root, 'split.txt')
    write_text(split, '010001\n010002\n\n010001.jpg\n')  # the same frame
    with pytest.raises(
            ValueError,
            match=rf'{split}: line 4: sample 010001 is listed twice '
            r'\(first on line 1\)'):
        llvip_split(root)


def test_repeated_three_times_names_every_line(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    write_text(osp.join(root, 'split.txt'), '010002\n010001\n010002\n010002\n')
    with pytest.raises(
            ValueError,
            match=r'sample 010002 is listed 3 times \(first on line 1; '
            r'lines 1, 3, 4\)'):
        llvip_split(root)


@pytest.mark.parametrize(
    'write, dataset, split, lines, expected',
    [(write_m3fd, M3FDDataset, 'trainval.txt', '00000\n00001\n00002\n00001\n',
      r'trainval\.txt: line 4: sample 00001 is listed twice \(first on line 2\)'),
     (write_mfnet, MFNetDataset, 'test.txt', '00002D\n00003N\n00002D.png\n',
      r'test\.txt: line 3: sample 00002D is listed twice \(first on line 1\)')],
    ids=['m3fd', 'mfnet'])
def test_split_file_with_a_repeated_sample_is_refused(tmp_path, write, dataset, split,
                                                      lines, expected):
    root = write(str(tmp_path))
    write_text(osp.join(root, split), lines)
    with pytest.raises(ValueError, match=expected):
        dataset(data_root=root, ann_file=split, pipeline=[])


def test_flir_list_naming_one_pair_twice_is_refused(tmp_path):
    root = write_flir(str(tmp_path))
    # with and without the thermal tag: the same pair
    write_text(
        osp.join(root, 'align_train.txt'),
        'FLIR_00001_PreviewData\nFLIR_00002_PreviewData\nFLIR_00001\n')
    with pytest.raises(
            ValueError,
            match=r"align_train\.txt: line 3: sample FLIR_00001 is listed "
            r"twice \(first on line 1 as 'FLIR_00001_PreviewData'\)"):
        FLIRAlignedDataset(data_root=root, ann_file='align_train.txt', pipeline=[])


def test_flir_coco_json_listing_an_image_twice_is_refused(tmp_path):
    root = write_flir(str(tmp_path))
    path = osp.join(root, 'Annotation_train.json')
    coco = json.load(open(path))
    coco['images'].append(dict(coco['images'][1], id=99))
    json.dump(coco, open(path, 'w'))
    with pytest.raises(
            ValueError,
            match=r"images\[6\] has the file_name 'FLIR_00002_RGB\.jpg' "
            r'of images\[1\]'):
        FLIRAlignedDataset(
            data_root=root, ann_file='Annotation_train.json', pipeline=[])


def test_kaist_keeps_its_message_from_the_shared_helper(tmp_path):
    root = copy_kaist(tmp_path / 'kaist')
    write_text(
        osp.join(root, 'imageSets', 'dup.txt'),
        'set06/V000/I00019\nset06/V000/I00039\nset06_V000_I00039.JPG\n')
    with pytest.raises(
            ValueError,
            match=r'dup\.txt: line 3: frame set06/V000/I00039 is listed '
            r'twice \(first on line 2\)'):
        KAISTDataset(
            data_root=root, ann_file='imageSets/dup.txt', pipeline=[], test_mode=True)
