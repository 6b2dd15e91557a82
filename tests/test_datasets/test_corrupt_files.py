"""Empty or corrupt image and label files: the file is named and what is wrong."""
import os.path as osp
import shutil

import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (LLVIPDataset, LoadRGBTImagePair, LoadRGBTSegAnnotations,
                              PST900Dataset)
from tests.conftest import DATA
from tests.helpers.layouts import write_pst900

LLVIP = osp.join(DATA, 'llvip_mini')


@pytest.fixture
def llvip_copy(tmp_path):
    root = tmp_path / 'LLVIP'
    shutil.copytree(LLVIP, root)
    return root


def test_empty_rgb_jpeg_is_named_when_the_dataset_is_built(llvip_copy):
    (llvip_copy / 'visible/train/010002.jpg').write_bytes(b'')
    with pytest.raises(
            ValueError,
            match=r'cannot read image file .*visible/train/'
            r'010002\.jpg: the file is empty \(0 bytes\)'):
        LLVIPDataset(data_root=str(llvip_copy), pipeline=[])


def test_empty_thermal_jpeg_is_named_by_the_loader(llvip_copy):
    (llvip_copy / 'infrared/train/010001.jpg').write_bytes(b'')
    ds = LLVIPDataset(
        data_root=str(llvip_copy), pipeline=[dict(type='LoadRGBTImagePair')])
    with pytest.raises(
            ValueError,
            match=r'cannot decode image file .*infrared/'
            r'train/010001\.jpg: the file is empty \(0 bytes\)'):
        ds[0]
    # the transform alone, e.g. in a user's own pipeline
    with pytest.raises(ValueError, match=r'010001\.jpg: the file is empty'):
        LoadRGBTImagePair()(
            dict(
                img_path=str(llvip_copy / 'visible/train/010001.jpg'),
                thermal_path=str(llvip_copy / 'infrared/train/010001.jpg')))


@pytest.mark.parametrize('content, problem', [
    (b'', r'the file is empty \(0 bytes\)'),
    (b'\x89PNG\r\n\x1a\n truncated', r'18 bytes, not a readable image'),
])
def test_empty_or_corrupt_label_png_is_named(tmp_path, content, problem):
    root = write_pst900(str(tmp_path / 'pst'))
    label = osp.join(root, 'train/labels/00000.png')
    with open(label, 'wb') as f:
        f.write(content)
    ds = PST900Dataset(
        data_root=root,
        pipeline=[dict(type='LoadRGBTImagePair'),
                  dict(type='LoadRGBTSegAnnotations')])
    with pytest.raises(
            ValueError,
            match=r'train/labels/00000\.png: cannot read '
            rf'the label map \({problem}\)'):
        ds[0]
    assert LoadRGBTSegAnnotations  # exported for users' pipelines
