import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.registry import MODELS
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import mwam_mm  # noqa: F401
from mwam_mm.datasets import FMBDataset, MFNetDataset, PST900Dataset
from tests.conftest import DATA
from tests.helpers.layouts import write_fmb, write_mfnet, write_pst900

LOAD = [dict(type='LoadRGBTImagePair'), dict(type='LoadRGBTSegAnnotations')]


@pytest.fixture
def mmseg_scope():
    from mmengine.registry import DefaultScope
    name = f'test-mmseg-{id(object())}'
    yield DefaultScope.get_instance(name, scope_name='mmseg')
    DefaultScope._instance_dict.pop(name, None)


def samples(dataset):
    return [dataset[i] for i in range(len(dataset))]


def test_real_mfnet_inputs_load_as_four_channel_samples(tmp_path):
    root = tmp_path / 'MFNet'
    shutil.copytree(osp.join(DATA, 'mfnet_mini', 'images'), root / 'images')
    os.makedirs(root / 'labels')
    for name in os.listdir(root / 'images'):
        cv2.imwrite(str(root / 'labels' / name), np.zeros((480, 640), np.uint8))
    (root / 'test_night.txt').write_text('01234N\n')
    ds = MFNetDataset(data_root=str(root), pipeline=LOAD)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == \
        ['01234N', '01477D']
    sample = ds[0]
    assert sample['img'].shape == (480, 640, 4)
    rgba = cv2.imread(
        osp.join(DATA, 'mfnet_mini/images/01234N.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(sample['img'], rgba)  # BGR + thermal, as stored
    night = MFNetDataset(data_root=str(root), ann_file='test_night.txt', pipeline=LOAD)
    assert len(night) == 1


def test_generated_layouts_load(tmp_path):
    mfnet = MFNetDataset(
        data_root=write_mfnet(str(tmp_path / 'm')), ann_file='train.txt', pipeline=LOAD)
    pst = PST900Dataset(data_root=write_pst900(str(tmp_path / 'p')), pipeline=LOAD)
    fmb = FMBDataset(data_root=write_fmb(str(tmp_path / 'f')), pipeline=LOAD)
    for ds, classes in ((mfnet, 9), (pst, 5), (fmb, 14)):
        sample = ds[0]
        assert sample['img'].shape[2] == 4
        assert len(ds.metainfo['classes']) == classes
        values = set(np.unique(sample['gt_seg_map']).tolist())
        assert values <= set(range(classes)) | {255}
    # FMB: 0 (unlabeled) becomes the ignore index, 1-14 become 0-13
    raw = cv2.imread(fmb.get_data_info(0)['seg_map_path'], cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(fmb[0]['gt_seg_map'][raw == 1], 0)
    assert (fmb[0]['gt_seg_map'][raw == 0] == 255).all()


def test_label_out_of_range_names_the_file(tmp_path):
    root = write_pst900(str(tmp_path / 'p'))
    label = osp.join(root, 'train/labels/00000.png')
    bad = cv2.imread(label, cv2.IMREAD_UNCHANGED)
    bad[10, 10] = 7
    cv2.imwrite(label, bad)
    ds = PST900Dataset(data_root=root, pipeline=LOAD)
    with pytest.raises(
            ValueError,
            match=r'00000\.png: label values \[7\] are outside '
            r'the 5 classes .*ignore index 255'):
        ds[0]


def test_image_label_size_mismatch_names_both_files(tmp_path):
    root = write_pst900(str(tmp_path / 'p'))
    label = osp.join(root, 'train/labels/00000.png')
    cv2.imwrite(label, np.zeros((10, 12), np.uint8))
    with pytest.raises(
            ValueError,
            match=r'labels/00000\.png: label map is 12x10.*'
            r'rgb/00000\.png is 96x80'):
        PST900Dataset(data_root=root, pipeline=LOAD)[0]


def test_rgba_file_with_the_wrong_channel_count(tmp_path):
    root = write_mfnet(str(tmp_path / 'm'))
    path = osp.join(root, 'images', '00000D.png')
    cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_COLOR))  # RGB only
    ds = MFNetDataset(data_root=root, ann_file='train.txt', pipeline=LOAD)
    with pytest.raises(
            ValueError,
            match=r'00000D\.png has 3 channel\(s\); the '
            r'modality layout .* needs 4'):
        ds[0]


def test_missing_split_entry_names_the_sample(tmp_path):
    root = write_mfnet(str(tmp_path / 'm'))
    with open(osp.join(root, 'train.txt'), 'a') as f:
        f.write('99999N\n')
    with pytest.raises(
            FileNotFoundError,
            match=r"sample '99999N' \(from .*train\.txt"
            r'\): its stacked_path .*99999N\.png does not exist'):
        MFNetDataset(data_root=root, ann_file='train.txt', pipeline=LOAD)


@pytest.mark.parametrize('seed', range(3))
def test_seg_maps_stay_aligned_through_geometric_transforms(seed, mmseg_scope):
    rng = np.random.RandomState(seed)
    h, w = 60, 80
    label = rng.randint(0, 5, (h, w)).astype(np.uint8)
    code = (label * 50).astype(np.uint8)  # image channels encode the label
    img = np.dstack([code, code, code, code])
    results = dict(
        img=img,
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_seg_map=label,
        seg_fields=['gt_seg_map'])
    np.random.seed(seed)
    pipeline = Compose([
        dict(
            type='RandomResize',
            scale=(160, 120),
            ratio_range=(0.5, 2.0),
            keep_ratio=True,
            interpolation='nearest'),
        dict(type='RandomCrop', crop_size=(48, 64), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
    ])
    out = pipeline(results)
    assert out['img'].shape[:2] == out['gt_seg_map'].shape
    for c in range(4):
        np.testing.assert_array_equal(out['img'][..., c], out['gt_seg_map'] * 50)


def test_seg_preprocessor_normalises_and_pads_images_and_labels():
    pre = MODELS.build(dict(type='RGBTSegDataPreprocessor', size_divisor=32))
    img = torch.full((4, 40, 50), 128, dtype=torch.uint8)
    sample = SegDataSample(
        gt_sem_seg=PixelData(data=torch.ones(1, 40, 50, dtype=torch.long)))
    out = pre(dict(inputs=[img], data_samples=[sample]), training=True)
    assert out['inputs'].shape == (1, 4, 64, 64)
    torch.testing.assert_close(out['inputs'][0, 3, :40, :50],
                               torch.zeros(40, 50))  # thermal: (128 - 128) / 64
    seg = out['data_samples'][0].gt_sem_seg.data
    assert seg.shape == (1, 64, 64) and (seg[0, 40:] == 255).all()
    with pytest.raises(ValueError, match='needs 4'):
        pre(
            dict(
                inputs=[torch.zeros(3, 8, 8, dtype=torch.uint8)],
                data_samples=[sample]))
