"""16-bit (radiometric) thermal: loaded at full depth, scaled as configured, alike
for every dataset class."""
import glob
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (FLIRAlignedDataset, FMBDataset, LLVIPDataset,
                              LoadRGBTImagePair, M3FDDataset, MFNetDataset,
                              PST900Dataset, make_synthetic_rgbt)
from tests.conftest import DATA
from tests.helpers.layouts import (write_flir, write_fmb, write_m3fd, write_mfnet,
                                   write_pst900)

THERMAL16 = osp.join(DATA, 'thermal16', 'thermal16_96x80.png')  # 7163..8905


def raw16():
    img = cv2.imread(THERMAL16, cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == (80, 96)
    return img.astype(np.float64)


def minmax(values):
    return (values - values.min()) / (values.max() - values.min()) * 255


def robust(values):
    """The default: 0.5/99.5 percentiles (inverted CDF) to 0/255, clipped."""
    low, high = np.percentile(values, (0.5, 99.5), method='inverted_cdf')
    return np.clip((values - low) / (high - low) * 255, 0, 255)


def use_fixture_as_thermal(paths):
    """Put the 16-bit PNG's bytes in place of each thermal file (decoders read the
    content, not the name)."""
    assert paths
    for path in paths:
        shutil.copyfile(THERMAL16, path)


def llvip(root):
    make_synthetic_rgbt(
        root, num_train=2, num_test=1, width=96, height=80, classes=('person', ))
    use_fixture_as_thermal(glob.glob(osp.join(root, 'infrared/train/*.jpg')))
    return LLVIPDataset(data_root=root, pipeline=[dict(type='LoadRGBTImagePair')])


def flir_voc(root):
    write_flir(root, num=4)
    use_fixture_as_thermal(glob.glob(osp.join(root, 'JPEGImages/*.jpeg')))
    return FLIRAlignedDataset(
        data_root=root,
        ann_file='align_train.txt',
        pipeline=[dict(type='LoadRGBTImagePair')])


def flir_coco(root):
    write_flir(root, num=4)
    use_fixture_as_thermal(glob.glob(osp.join(root, 'JPEGImages/*.jpeg')))
    return FLIRAlignedDataset(
        data_root=root,
        ann_file='Annotation_train.json',
        pipeline=[dict(type='LoadRGBTImagePair')])


def m3fd(root):
    write_m3fd(root, num=2)
    use_fixture_as_thermal(glob.glob(osp.join(root, 'Ir/*.png')))
    return M3FDDataset(data_root=root, pipeline=[dict(type='LoadRGBTImagePair')])


def pst900(root):
    write_pst900(root)
    use_fixture_as_thermal(glob.glob(osp.join(root, 'train/thermal/*.png')))
    return PST900Dataset(data_root=root, pipeline=[dict(type='LoadRGBTImagePair')])


def fmb(root):
    write_fmb(root)
    use_fixture_as_thermal(glob.glob(osp.join(root, 'train/Infrared/*.png')))
    return FMBDataset(data_root=root, pipeline=[dict(type='LoadRGBTImagePair')])


def mfnet(root):
    """MFNet stacks RGB + thermal in one PNG: a 16-bit RGBA file here."""
    write_mfnet(root, num=2)
    for path in glob.glob(osp.join(root, 'images/*.png')):
        bgra = cv2.imread(path, cv2.IMREAD_UNCHANGED).astype(np.uint16) * 257
        bgra[..., 3] = raw16().astype(np.uint16)
        cv2.imwrite(path, bgra)
    return MFNetDataset(
        data_root=root, ann_file='train.txt', pipeline=[dict(type='LoadRGBTImagePair')])


@pytest.mark.parametrize('make', [llvip, flir_voc, flir_coco, m3fd, pst900, fmb, mfnet])
def test_every_dataset_class_loads_16_bit_thermal_at_full_depth(make, tmp_path):
    ds = make(str(tmp_path / make.__name__))
    img = ds[0]['img']
    assert img.shape == (80, 96, 4)
    assert img.dtype == np.float32
    thermal = img[..., 3]
    # cut to 8 bits it had 8 grey levels; scaled (by default between its 0.5 and
    # 99.5 percentiles) it keeps nearly all of its ~1000
    assert len(np.unique(thermal)) > 900
    np.testing.assert_allclose(thermal, robust(raw16()), atol=1e-3)
    rgb = img[..., :3]
    assert 0 <= rgb.min() and rgb.max() <= 255 and len(np.unique(rgb)) > 50


def test_fixed_range_and_raw_scaling(tmp_path):
    rgb = tmp_path / 'rgb.png'
    cv2.imwrite(str(rgb), np.full((80, 96, 3), 100, np.uint8))
    sample = dict(img_path=str(rgb), thermal_path=THERMAL16)

    fixed = LoadRGBTImagePair(depth_scaling=(7000, 9000))(dict(sample))['img']
    np.testing.assert_allclose(fixed[..., 3], (raw16() - 7000) / 2000 * 255, atol=1e-3)
    assert (fixed[..., :3] == 100).all()  # 8-bit RGB keeps its values
    clipped = LoadRGBTImagePair(depth_scaling=dict(thermal=(7500, 8000)))(
        dict(sample))['img'][..., 3]
    assert clipped.min() == 0 and clipped.max() == 255

    raw = LoadRGBTImagePair(depth_scaling='raw')(dict(sample))['img']
    np.testing.assert_array_equal(raw[..., 3], raw16())

    # min-max, the default before 'robust', stays available, also per modality
    for spec in ('minmax', dict(thermal='minmax')):
        full = LoadRGBTImagePair(depth_scaling=spec)(dict(sample))['img'][..., 3]
        np.testing.assert_allclose(full, minmax(raw16()), atol=1e-3)
    # a dict without the modality gives it the default
    default = LoadRGBTImagePair(depth_scaling=dict(rgb='raw'))(dict(sample))['img']
    np.testing.assert_allclose(default[..., 3], robust(raw16()), atol=1e-3)

    # an 8-bit pair is loaded exactly as before: uint8, unscaled
    cv2.imwrite(str(tmp_path / 't8.png'), np.full((80, 96), 7, np.uint8))
    plain = LoadRGBTImagePair()(
        dict(img_path=str(rgb), thermal_path=str(tmp_path / 't8.png')))
    assert plain['img'].dtype == np.uint8 and (plain['img'][..., 3] == 7).all()

    with pytest.raises(ValueError, match=r"depth_scaling\['thermal'\].*low < high"):
        LoadRGBTImagePair(depth_scaling=dict(thermal=(9000, 7000)))
    with pytest.raises(ValueError, match="unknown depth scaling 'clip'"):
        LoadRGBTImagePair(depth_scaling='clip')
    with pytest.raises(KeyError, match='depth'):
        LoadRGBTImagePair(depth_scaling=dict(depth='raw'))


def test_16_bit_sample_goes_through_the_training_pipeline(tmp_path, mmdet_scope):
    ds = m3fd(str(tmp_path / 'm3fd'))
    pipeline = Compose([
        dict(type='LoadRGBTImagePair', depth_scaling=(7000, 9000)),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='RandomFlip', prob=0.5),
        dict(
            type='PerModality',
            modality='rgb',
            transforms=[dict(type='PhotoMetricDistortion')]),
        dict(
            type='PerModality',
            modality='thermal',
            transforms=[dict(type='PhotoMetricDistortion', hue_delta=0)]),
        dict(type='PackDetInputs'),
    ])
    out = pipeline(ds.get_data_info(0))
    thermal = out['inputs'][3].numpy()
    assert out['inputs'].dtype.is_floating_point
    assert len(np.unique(thermal)) > 500
