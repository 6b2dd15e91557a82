"""The degradation suite: what each degradation does to a known image, and that it
touches its modality only."""
import math
import zlib

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import TRANSFORMS

import mwam_mm  # noqa: F401  (registers the transforms)
from mwam_mm import ModalityLayout
from mwam_mm.evaluation.degradations import (DEGRADATIONS, PLANNED_FOR,
                                             degradation_pipeline, degradation_plan,
                                             summarize_degradations)

RGB, THERMAL = slice(0, 3), slice(3, 4)


def sample(img, name='190001'):
    return dict(img=img, img_path=f'/data/visible/test/{name}.jpg')


def degrade(kind, modality, severity, img, name='190001', **kwargs):
    step = TRANSFORMS.build(
        dict(type=DEGRADATIONS[kind], modality=modality, severity=severity, **kwargs))
    return step(sample(img.copy(), name))


def flat(rgb=100, thermal=128, size=(64, 64), dtype=np.uint8):
    img = np.empty(size + (4, ), dtype)
    img[..., RGB] = rgb
    img[..., THERMAL] = thermal
    return img


def test_noise_is_gaussian_of_the_stated_sigma_seeded_by_the_file_name():
    out = degrade('noise', 'thermal', 1, flat())
    # independent path: the generator the docstring specifies, seed 0
    words = ('190001', 'noise', 'thermal')
    rng = np.random.default_rng([0] + [zlib.crc32(w.encode()) for w in words])
    z = rng.standard_normal((64, 64, 1), dtype=np.float32)
    expected = np.round(np.clip(128 + 0.08 * 255 * z, 0, 255)).astype(np.uint8)
    assert np.array_equal(out['img'][..., THERMAL], expected)
    assert np.all(out['img'][..., RGB] == 100)  # RGB untouched
    residual = out['img'][..., THERMAL].astype(float) - 128
    assert abs(residual.std() - 20.4) < 1.0  # 0.08 of the 0-255 range
    assert out['degradations'] == [
        dict(name='noise', modality='thermal', severity=1, level=0.08)
    ]
    # the same file name in another folder: the same noise; another name: other
    moved = TRANSFORMS.build(
        dict(type='ModalityGaussianNoise', modality='thermal', severity=1))(
            dict(img=flat(), img_path='/else/190001.png'))
    assert np.array_equal(moved['img'], out['img'])
    assert not np.array_equal(
        degrade('noise', 'thermal', 1, flat(), '190002')['img'], out['img'])


def test_severities_share_their_draws():
    # a float image: no rounding; compared where severity 5 is not clipped
    img = flat(rgb=128, dtype=np.float32)
    one = degrade('noise', 'rgb', 1, img)['img'][..., RGB] - 128
    five = degrade('noise', 'rgb', 5, img)['img'][..., RGB] - 128
    inside = (five > -128) & (five < 127)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(
        five[inside], one[inside] * (0.38 / 0.08), rtol=1e-4, atol=1e-3)


def test_blur_spreads_an_impulse_as_a_normalised_gaussian():
    img = np.zeros((65, 65, 4), np.float32)
    img[32, 32, 3] = 255.0
    img[..., RGB] = 50.0
    out = degrade('blur', 'thermal', 1, img)['img']
    # sigma 1, kernel truncated at 4 sigma (9 taps), normalised
    taps = np.exp(-np.arange(-4, 5)**2 / 2.0)
    g = taps / taps.sum()
    assert out[32, 32, 3] == pytest.approx(255 * g[4] * g[4], rel=1e-5)
    assert out[32, 33, 3] == pytest.approx(255 * g[4] * g[5], rel=1e-5)
    assert out[30, 31, 3] == pytest.approx(255 * g[2] * g[3], rel=1e-5)
    assert out[32, 37, 3] == 0.0  # beyond the kernel
    assert out[..., 3].sum() == pytest.approx(255.0, rel=1e-5)
    assert np.all(out[..., RGB] == 50.0)


def test_low_light_and_overexposure_on_known_values():
    img = np.zeros((1, 4, 4), np.uint8)
    img[0, :, :3] = np.array([0, 64, 128, 255])[:, None]
    img[0, :, 3] = 77
    # low light, severity 2: 255 * 0.6 * (v / 255) ** 2
    out = degrade('low-light', 'rgb', 2, img)['img']
    assert out[0, :, 0].tolist() == [0, 10, 39, 153]
    assert np.all(out[..., 3] == 77)
    # over-exposure, severity 2: one stop (x 2), saturating at 255
    out = degrade('overexposure', 'rgb', 2, img)['img']
    assert out[0, :, 1].tolist() == [0, 128, 255, 255]
    assert np.all(out[..., 3] == 77)


def test_shift_translates_one_modality_by_k_pixels_repeating_the_edge():
    h, w = 40, 50
    ys, xs = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 4), np.float32)
    img[..., 3] = xs + 100 * ys  # every thermal pixel distinct
    img[..., RGB] = (xs * 3 + ys)[..., None]
    directions = set()
    for name in ('190001', '190002', '190003', '190004', '190005'):
        out = degrade('shift', 'thermal', 4, img, name=name, value_range=(0, 1e4))
        dx, dy = out['degradations'][0]['dx'], out['degradations'][0]['dy']
        assert abs(math.hypot(dx, dy) - 8) <= 0.71  # k = 8, offsets rounded
        rows = np.clip(np.arange(h) - dy, 0, h - 1)
        cols = np.clip(np.arange(w) - dx, 0, w - 1)
        assert np.array_equal(out['img'][..., 3], img[rows][:, cols, 3])
        # content moved by (dx, dy): the pixel from (20, 25) is now at (20+dy, 25+dx)
        assert out['img'][20 + dy, 25 + dx, 3] == img[20, 25, 3]
        assert np.array_equal(out['img'][..., RGB], img[..., RGB])
        directions.add((dx, dy))
    assert len(directions) > 1  # drawn per image


@pytest.mark.parametrize('kind', list(DEGRADATIONS))
@pytest.mark.parametrize('modality', ['rgb', 'thermal'])
def test_each_degradation_touches_only_its_modality(kind, modality):
    img = np.random.RandomState(0).randint(0, 256, (48, 56, 4)).astype(np.uint8)
    out = degrade(kind, modality, 3, img)['img']
    own, other = (RGB, THERMAL) if modality == 'rgb' else (THERMAL, RGB)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out[..., other], img[..., other])
    assert not np.array_equal(out[..., own], img[..., own])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match='severity must be an integer from 1 to 5'):
        TRANSFORMS.build(dict(type='ModalityGaussianBlur', modality='rgb', severity=6))
    with pytest.raises(KeyError, match="no modality named 'depth'"):
        TRANSFORMS.build(dict(type='ModalityGaussianBlur', modality='depth'))
    with pytest.raises(KeyError, match="unknown degradation.*'fog'"):
        degradation_plan(None, ['fog'])
    with pytest.raises(ValueError, match='value_range'):
        TRANSFORMS.build(
            dict(type='ModalityLowLight', modality='rgb', value_range=(5, 5)))
    step = TRANSFORMS.build(dict(type='ModalityShift', modality='rgb'))
    with pytest.raises(KeyError, match='name its file'):
        step(dict(img=flat()))
    with pytest.raises(ValueError, match='stacked H x W x 4'):
        step(dict(img=np.zeros((8, 8, 3), np.uint8), img_path='a.jpg'))


def test_plan_and_pipeline():
    plan = degradation_plan(None, severities=(1, 5))
    assert PLANNED_FOR['overexposure'] == PLANNED_FOR['low-light'] == ('rgb', )
    assert ('overexposure', 'rgb', 5) in plan and ('low-light', 'rgb', 1) in plan
    assert not any(
        d in ('overexposure', 'low-light') and m == 'thermal' for d, m, _ in plan)
    assert len(plan) == (5 + 3) * 2  # five on RGB, three on thermal, two levels
    assert plan[:2] == [('noise', 'rgb', 1), ('noise', 'rgb', 5)]
    # modalities named: every named degradation on each
    assert degradation_plan(None, ['blur', 'low-light'], (2, ),
                            ['thermal']) == [('blur', 'thermal', 2),
                                             ('low-light', 'thermal', 2)]
    no_rgb = ModalityLayout([dict(name='thermal'), dict(name='depth', channels=1)])
    with pytest.raises(ValueError, match='nothing to test.*name the modalities'):
        degradation_plan(no_rgb, ['overexposure'], (1, ))

    pipeline = [
        dict(type='LoadRGBTImagePair', modalities=None),
        dict(type='Resize', scale=(8, 8)),
        dict(type='PackDetInputs')
    ]
    out = degradation_pipeline(pipeline, 'shift', 'thermal', 2, seed=7)
    assert out[1] == dict(
        type='ModalityShift', modality='thermal', severity=2, seed=7, modalities=None)
    assert [s['type'] for s in out
            ] == ['LoadRGBTImagePair', 'ModalityShift', 'Resize', 'PackDetInputs']
    assert len(pipeline) == 3  # not changed in place
    with pytest.raises(ValueError, match='no LoadRGBTImagePair'):
        degradation_pipeline(pipeline[1:], 'noise', 'rgb', 1)


def test_in_a_loading_pipeline_only_the_degraded_modality_changes(tmp_path):
    rng = np.random.RandomState(1)
    rgb = rng.randint(0, 256, (32, 40, 3)).astype(np.uint8)
    thermal = rng.randint(0, 256, (32, 40)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'a.png'), rgb)
    cv2.imwrite(str(tmp_path / 'a_t.png'), thermal)
    info = dict(
        img_path=str(tmp_path / 'a.png'), thermal_path=str(tmp_path / 'a_t.png'))
    load = [dict(type='LoadRGBTImagePair')]
    clean = Compose(load)(dict(info))['img']
    blurred = Compose(degradation_pipeline(load, 'blur', 'rgb', 2))(dict(info))['img']
    assert np.array_equal(blurred[..., 3], thermal)
    expected = cv2.GaussianBlur(
        clean[..., :3].astype(np.float32), (17, 17),
        2.0,
        borderType=cv2.BORDER_REFLECT_101)
    assert np.array_equal(blurred[..., :3], np.round(expected).astype(np.uint8))


def test_robustness_score_per_modality():
    scores = {
        'noise': {
            'rgb': {
                '1': 0.6,
                '2': 0.4
            },
            'thermal': {
                '1': 0.8,
                '2': 0.8
            }
        },
        'blur': {
            'rgb': {
                '1': 0.7,
                '2': 0.3
            }
        }
    }
    out = summarize_degradations(0.8, scores)
    assert out['modalities']['rgb']['mPC'] == pytest.approx(0.5)
    assert out['modalities']['rgb']['rPC'] == pytest.approx(0.625)
    assert out['modalities']['thermal']['rPC'] == pytest.approx(1.0)
    assert out['degradations']['noise']['rgb'] == pytest.approx(
        dict(mean=0.5, relative=0.625))
    assert out['degradations']['blur']['rgb']['mean'] == pytest.approx(0.5)
    assert summarize_degradations(0.0, scores)['modalities']['rgb']['rPC'] is None
    # the same numbers as miss rates: the clean rate as a share of the degraded
    rates = summarize_degradations(0.25, scores, lower_better=True)
    assert rates['modalities']['rgb']['rPC'] == pytest.approx(0.25 / 0.5)
    assert rates['degradations']['noise']['rgb']['relative'] == pytest.approx(0.5)
