import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmdet.structures.bbox import HorizontalBoxes

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (BlankModality, LoadRGBTImagePair, ModalityDropout,
                              PerModality)

pytestmark = pytest.mark.usefixtures('mmdet_scope')


def pattern_sample(h=120, w=160, seed=0):
    """RGB noise with a bright box; thermal = a copy of channel 0 (so any
    misalignment between modalities shows as a difference)."""
    rng = np.random.RandomState(seed)
    rgb = rng.randint(0, 120, (h, w, 3)).astype(np.uint8)
    x1, y1, x2, y2 = 40, 30, 90, 100
    rgb[y1:y2, x1:x2] = 250
    img = np.concatenate([rgb, rgb[..., :1]], axis=2)
    return dict(
        img=img,
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_bboxes=HorizontalBoxes(np.array([[x1, y1, x2, y2]], np.float32)),
        gt_bboxes_labels=np.array([0]),
        gt_ignore_flags=np.array([False]))


@pytest.mark.parametrize('seed', range(4))
def test_geometric_transforms_keep_modalities_and_boxes_aligned(seed):
    np.random.seed(seed)
    pipeline = Compose([
        dict(type='Resize', scale=(200, 150), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomCrop', crop_size=(100, 120), allow_negative_crop=False),
        dict(type='Pad', size_divisor=32, pad_val=dict(img=0)),
    ])
    out = pipeline(pattern_sample(seed=seed))
    img = out['img']
    assert img.shape[2] == 4 and img.shape[0] % 32 == 0 and img.shape[1] % 32 == 0
    np.testing.assert_array_equal(img[..., 3], img[..., 0])  # pixel alignment
    x1, y1, x2, y2 = out['gt_bboxes'].numpy()[0].round().astype(int)
    inside = img[y1 + 1:y2 - 1, x1 + 1:x2 - 1]
    assert inside.size > 0 and inside[..., 3].min() > 200  # box on the bright patch
    bright = np.argwhere(img[..., 3] > 200)
    assert bright[:, 0].min() >= y1 - 1 and bright[:, 0].max() <= y2
    assert bright[:, 1].min() >= x1 - 1 and bright[:, 1].max() <= x2


def test_loader_stacks_in_layout_order_and_checks_sizes(tmp_path):
    rgb = np.full((20, 30, 3), (10, 20, 30), np.uint8)
    thermal = np.full((20, 30), 200, np.uint8)
    cv2.imwrite(str(tmp_path / 'v.png'), rgb)
    cv2.imwrite(str(tmp_path / 't.png'), cv2.merge([thermal] * 3))
    out = LoadRGBTImagePair()(
        dict(img_path=str(tmp_path / 'v.png'), thermal_path=str(tmp_path / 't.png')))
    assert out['img'].shape == (20, 30, 4)
    assert tuple(out['img'][0, 0]) == (10, 20, 30, 200)
    three = LoadRGBTImagePair(modalities=[
        dict(name='rgb', channels=3, bgr_to_rgb=True),
        dict(name='thermal', channels=3)
    ])
    assert three(
        dict(img_path=str(tmp_path / 'v.png'),
             thermal_path=str(tmp_path / 't.png')))['img'].shape[2] == 6
    cv2.imwrite(str(tmp_path / 'small.png'), thermal[:10])
    with pytest.raises(ValueError, match=r'v\.png is 30x20.*small\.png is 30x10'):
        LoadRGBTImagePair()(
            dict(
                img_path=str(tmp_path / 'v.png'),
                thermal_path=str(tmp_path / 'small.png')))
    with pytest.raises(FileNotFoundError, match=r'gone\.png'):
        LoadRGBTImagePair()(
            dict(
                img_path=str(tmp_path / 'v.png'),
                thermal_path=str(tmp_path / 'gone.png')))
    with pytest.raises(KeyError, match="no 'thermal_path' for modality 'thermal'"):
        LoadRGBTImagePair()(dict(img_path=str(tmp_path / 'v.png')))


def test_photometric_transform_touches_one_modality_only():
    np.random.seed(0)
    sample = pattern_sample()
    before = sample['img'].copy()
    out = PerModality(
        transforms=[dict(type='PhotoMetricDistortion')], modality='rgb')(
            sample)
    assert out['img'].dtype == np.uint8
    np.testing.assert_array_equal(out['img'][..., 3], before[..., 3])
    assert not np.array_equal(out['img'][..., :3], before[..., :3])

    thermal_aug = PerModality(
        transforms=[
            dict(type='PhotoMetricDistortion', brightness_delta=60, hue_delta=0)
        ],
        modality='thermal')
    changed = []
    for _ in range(6):  # each distortion is applied at random
        out = thermal_aug(pattern_sample())
        np.testing.assert_array_equal(out['img'][..., :3], before[..., :3])
        changed.append(not np.array_equal(out['img'][..., 3], before[..., 3]))
    assert any(changed)

    with pytest.raises(ValueError, match='changed the image size'):
        PerModality(
            transforms=[dict(type='Resize', scale=(10, 10))], modality='rgb')(
                pattern_sample())


def test_modality_dropout_blanks_exactly_one_modality():
    np.random.seed(0)
    dropped = []
    for _ in range(40):
        out = ModalityDropout(prob=1.0, fill='zero')(pattern_sample())
        rgb_blank = not out['img'][..., :3].any()
        th_blank = not out['img'][..., 3].any()
        assert rgb_blank != th_blank
        dropped.append(out['dropped_modalities'][0])
    assert set(dropped) == {'rgb', 'thermal'}
    kept = ModalityDropout(prob=0.0)(pattern_sample())
    np.testing.assert_array_equal(kept['img'], pattern_sample()['img'])
    only_rgb = ModalityDropout(prob=1.0, weights=dict(rgb=1.0))(pattern_sample())
    assert only_rgb['dropped_modalities'] == ['rgb']


def test_blank_modality_fills_zero_or_the_layout_mean():
    out = BlankModality(blank='rgb', fill='mean')(pattern_sample())
    # mean is stored BGR: (103.53, 116.28, 123.675) rounded into uint8
    assert tuple(out['img'][0, 0, :3]) == (103, 116, 123)
    out = BlankModality(blank=['thermal'], fill='zero')(pattern_sample())
    assert not out['img'][..., 3].any() and out['img'][..., :3].any()
    with pytest.raises(ValueError, match='leaves no input'):
        BlankModality(blank=['rgb', 'thermal'])
    with pytest.raises(KeyError, match="unknown modality name.*'depth'"):
        BlankModality(blank='depth')
    with pytest.raises(ValueError, match="unknown fill 'noise'"):
        BlankModality(blank='rgb', fill='noise')
