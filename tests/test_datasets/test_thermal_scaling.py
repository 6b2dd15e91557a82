"""16-bit thermal scaling against hostile values: a few hot pixels must not black out
the image by default, and are reported under 'minmax'; a constant image (a dead
camera) is reported rather than silently made the same input as a blanked one."""
import logging
import os.path as osp
from contextlib import contextmanager

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

import mwam_mm  # noqa: F401
from mwam_mm.datasets import LoadRGBTImagePair
from mwam_mm.datasets.transforms import depth_scaling
from tests.conftest import DATA

THERMAL16 = osp.join(DATA, 'thermal16', 'thermal16_96x80.png')  # 7163..8905
HOT = ((0, 0), (40, 50), (79, 95))  # three pixels stuck at 65535, as in issue #20


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees its own warnings (the loader reports a file once per process)."""
    depth_scaling.reset_depth_warnings()
    yield
    depth_scaling.reset_depth_warnings()


@contextmanager
def logged_warnings():
    """Warning messages logged through mmengine's current logger (print_log)."""
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def messages(records):
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def clean16():
    img = cv2.imread(THERMAL16, cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == (80, 96)
    return img


def robust(values):
    """The documented default, written out: 0.5/99.5 percentiles (inverted CDF) to
    0/255, clipped."""
    values = values.astype(np.float64)
    low, high = np.percentile(values, (0.5, 99.5), method='inverted_cdf')
    return np.clip((values - low) / (high - low) * 255, 0, 255)


def write16(path, img):
    assert cv2.imwrite(str(path), img.astype(np.uint16))
    return str(path)


def sample(tmp_path, thermal):
    rgb = tmp_path / 'rgb.png'
    cv2.imwrite(str(rgb), np.full(thermal.shape[:2] + (3, ), 100, np.uint8))
    return dict(img_path=str(rgb), thermal_path=write16(tmp_path / 'ir.png', thermal))


def with_hot_pixels(img):
    img = img.copy()
    for y, x in HOT:
        img[y, x] = 65535
    return img


def test_hot_pixels_do_not_black_out_the_image_by_default(tmp_path):
    hot = with_hot_pixels(clean16())
    thermal = LoadRGBTImagePair()(sample(tmp_path, hot))['img'][..., 3]
    # min-max scaling put 99.96 % of this image at <= 40 of 255; the default gives
    # nearly the image without the three pixels (which become 255)
    assert (thermal <= 40).mean() < 0.6
    assert np.median(thermal) > 40
    np.testing.assert_allclose(thermal, robust(hot), atol=1e-3)
    rest = np.ones(hot.shape, bool)
    rest[tuple(np.array(HOT).T)] = False
    assert np.abs(thermal[rest] - robust(clean16())[rest]).max() < 5
    assert all(thermal[y, x] == 255 for y, x in HOT)
    # a camera-sized frame, a smooth 7000-7400 scene: the case
    yy, xx = np.mgrid[:512, :640]
    scene = (7000 + 400 * (yy + xx) / (511 + 639)).astype(np.uint16)
    frame = LoadRGBTImagePair()(sample(tmp_path, with_hot_pixels(scene)))['img']
    assert (frame[..., 3] <= 40).mean() < 0.2
    assert 100 < frame[..., 3].mean() < 155


def test_minmax_is_kept_as_an_option_and_warns_on_hot_pixels(tmp_path):
    hot = with_hot_pixels(clean16())
    data = sample(tmp_path, hot)
    with logged_warnings() as records:
        thermal = LoadRGBTImagePair(depth_scaling='minmax')(dict(data))['img'][..., 3]
    expected = (hot - 7163.0) / (65535 - 7163) * 255
    np.testing.assert_allclose(thermal, expected, atol=1e-3)
    found = [m for m in messages(records) if data['thermal_path'] in m]
    assert len(found) == 1, messages(records)
    assert '3 pixel(s)' in found[0] and '65535' in found[0] and 'minmax' in found[0]
    assert "'robust'" in found[0]  # says what to use instead
    # per modality too, and the 8-bit RGB stays as it is
    with logged_warnings() as records:
        out = LoadRGBTImagePair(depth_scaling=dict(thermal='minmax'))(dict(
            data, thermal_path=write16(tmp_path / 'other.png', hot)))['img']
    np.testing.assert_allclose(out[..., 3], expected, atol=1e-3)
    assert (out[..., :3] == 100).all()
    assert any('other.png' in m and '65535' in m for m in messages(records))


def test_robust_default_reports_the_clipped_hot_pixels_once_per_file(tmp_path):
    data = sample(tmp_path, with_hot_pixels(clean16()))
    load = LoadRGBTImagePair()
    with logged_warnings() as records:
        for _ in range(3):  # every epoch loads the file again
            load(dict(data))
    found = [m for m in messages(records) if data['thermal_path'] in m]
    assert len(found) == 1, messages(records)
    assert '3 pixel(s)' in found[0] and '65535' in found[0] and 'clipped' in found[0]


def test_warnings_are_rate_limited_across_files(tmp_path):
    """A camera with a stuck pixel gives it in every frame: 10 files are named,
    then only a count at 100, 1000, ..."""
    hot = with_hot_pixels(clean16())
    load = LoadRGBTImagePair()
    rgb = tmp_path / 'rgb.png'
    cv2.imwrite(str(rgb), np.full((80, 96, 3), 100, np.uint8))
    with logged_warnings() as records:
        for i in range(120):
            path = write16(tmp_path / f'ir{i:03d}.png', hot)
            load(dict(img_path=str(rgb), thermal_path=path))
    found = messages(records)
    assert len(found) == 11, found
    assert all(f'ir{i:03d}.png' in found[i] for i in range(10))
    assert 'counted, not shown' in found[9]
    assert found[10].startswith(
        'LoadRGBTImagePair: 100 images') and 'ir099' in found[10]


def test_constant_16_bit_image_is_reported(tmp_path):
    dead = np.full((80, 96), 7512, np.uint16)
    data = sample(tmp_path, dead)
    with logged_warnings() as records:
        thermal = LoadRGBTImagePair()(dict(data))['img'][..., 3]
    assert (thermal == 0).all()  # no contrast to stretch: as documented
    found = [m for m in messages(records) if data['thermal_path'] in m]
    assert len(found) == 1, messages(records)
    assert '7512' in found[0] and 'constant' in found[0] and 'blanked' in found[0]
    # with a fixed range the value is meaningful, yet a dead camera all the same
    with logged_warnings() as records:
        fixed = LoadRGBTImagePair(depth_scaling=(7000, 9000))(dict(
            data, thermal_path=write16(tmp_path / 'dead2.png', dead)))['img']
    np.testing.assert_allclose(fixed[..., 3], 512 / 2000 * 255, atol=1e-3)
    assert any('dead2.png' in m and 'constant' in m for m in messages(records))


def test_stacked_16_bit_file_names_the_file_and_modality(tmp_path):
    """MFNet-style RGBA: the thermal channel of one 16-bit file is checked alone."""
    bgra = np.full((80, 96, 4), 30000, np.uint16)
    bgra[..., :3] += np.arange(96, dtype=np.uint16)[None, :, None] * 100
    bgra[..., 3] = with_hot_pixels(clean16())
    path = write16(tmp_path / 'rgba.png', bgra)
    with logged_warnings() as records:
        img = LoadRGBTImagePair(depth_scaling='minmax')(dict(stacked_path=path))['img']
    found = messages(records)
    assert len(found) == 1 and 'rgba.png' in found[0] and 'thermal' in found[0], found
    assert (img[..., 3] <= 40).mean() > 0.99  # minmax does what it says


def test_normal_images_give_no_warning(tmp_path):
    """The fixture, noise, and a small but real hot object (a 12x12 person-sized
    patch far hotter than the scene): no warning under either scaling."""
    rng = np.random.default_rng(0)
    noisy = (7000 + rng.normal(0, 30, (512, 640))).astype(np.uint16)
    person = noisy.copy()
    person[200:212, 300:312] = 9000
    images = dict(fixture=clean16(), noisy=noisy, person=person)
    with logged_warnings() as records:
        for name, img in images.items():
            for spec in ('robust', 'minmax'):
                rgb = np.full(img.shape + (3, ), 100, np.uint8)
                cv2.imwrite(str(tmp_path / 'rgb.png'), rgb)
                LoadRGBTImagePair(depth_scaling=spec)(
                    dict(
                        img_path=str(tmp_path / 'rgb.png'),
                        thermal_path=write16(tmp_path / f'{name}_{spec}.png', img)))
    assert messages(records) == []


def test_robust_scaling_is_exact_and_cheap():
    """uint16 goes through a histogram; it matches np.percentile (float path)."""
    import timeit
    rng = np.random.default_rng(1)
    img = (7000 + rng.normal(0, 300, (512, 640, 1))).astype(np.uint16)
    img[0, 0] = 65535
    fast = depth_scaling.scale_depth(img, 'robust')
    np.testing.assert_allclose(fast, robust(img), atol=1e-3)
    np.testing.assert_allclose(
        depth_scaling.scale_depth(img.astype(np.float32), 'robust'), fast, atol=1e-3)
    # nearly constant (percentiles coincide): min-max rather than all zeros
    flat = np.full((80, 96, 1), 100, np.uint16)
    flat[:5] = 200
    np.testing.assert_array_equal(
        np.unique(depth_scaling.scale_depth(flat, 'robust')), [0, 255])
    seconds = min(
        timeit.repeat(
            lambda: depth_scaling.scale_depth(img, 'robust', 'x'), number=5,
            repeat=3)) / 5
    assert seconds < 0.02  # ~1 ms on a laptop core; generous for slow CI
