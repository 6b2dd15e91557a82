import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.registry import MODELS

import mwam_mm  # noqa: F401


def make(**kwargs):
    return MODELS.build(dict(type='RGBTDetDataPreprocessor', **kwargs))


def test_per_channel_normalisation_and_bgr_swap_inside_rgb_only():
    pre = make(pad_size_divisor=1)
    img = torch.zeros(4, 2, 3, dtype=torch.uint8)
    img[0], img[1], img[2], img[3] = 10, 20, 30, 200  # B, G, R, thermal
    out = pre(dict(inputs=[img], data_samples=[DetDataSample()]))
    x = out['inputs'][0]
    expected = [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375,
                (200 - 128.0) / 64.0]
    torch.testing.assert_close(x[:, 0, 0], torch.tensor(expected))


def test_mean_std_overrides_per_modality():
    pre = make(mean=dict(thermal=[100.0]), std=dict(thermal=[10.0]))
    img = torch.full((4, 8, 8), 110, dtype=torch.uint8)
    out = pre(dict(inputs=[img], data_samples=[DetDataSample()]))
    torch.testing.assert_close(out['inputs'][0, 3], torch.ones(8, 8))
    with pytest.raises(ValueError, match="mean of modality 'thermal' needs 1"):
        make(mean=dict(thermal=[1.0, 2.0]))


def test_batching_and_padding_like_the_stock_preprocessor():
    pre = make(pad_size_divisor=32)
    imgs = [
        torch.zeros(4, 40, 50, dtype=torch.uint8),
        torch.zeros(4, 30, 20, dtype=torch.uint8)
    ]
    samples = [DetDataSample(metainfo=dict(img_shape=i.shape[1:])) for i in imgs]
    out = pre(dict(inputs=imgs, data_samples=samples))
    assert out['inputs'].shape == (2, 4, 64, 64)
    assert out['data_samples'][1].batch_input_shape == (64, 64)


def test_channel_count_mismatch_is_a_clear_error():
    pre = make()
    with pytest.raises(ValueError, match=r'3 channels .*needs 4.*LoadRGBTImagePair'):
        pre(
            dict(
                inputs=[torch.zeros(3, 8, 8, dtype=torch.uint8)],
                data_samples=[DetDataSample()]))
    with pytest.raises(ValueError, match='set per modality'):
        make(bgr_to_rgb=True)


def frames(thermal_values, rgb_spread=40):
    """One uint8 RGB-T image per entry: RGB with a ramp of ``rgb_spread``, and
    thermal constant at the given value (or a ramp for None)."""
    images = []
    for value in thermal_values:
        img = torch.zeros(4, 8, 8, dtype=torch.uint8)
        img[:3] = torch.linspace(0, rgb_spread, 8).to(torch.uint8).view(1, 1, 8)
        img[3] = torch.arange(64, dtype=torch.uint8).view(8, 8) if value is None \
            else value
        images.append(img)
    return images


def samples_of(count, **meta):
    return [
        DetDataSample(metainfo=dict(img_path=f'{i}.jpg', **meta)) for i in range(count)
    ]


@pytest.mark.parametrize('kind', ['RGBTDetDataPreprocessor', 'RGBTSegDataPreprocessor'])
def test_a_constant_camera_is_marked_missing_at_test_time_only(kind, caplog):
    from mmseg.structures import SegDataSample
    pad = dict(pad_size_divisor=8) if kind.startswith('RGBTDet') else dict(
        size_divisor=8, test_cfg=dict(size_divisor=8))
    pre = MODELS.build(dict(type=kind, dead_camera=dict(tolerance=2), **pad))
    sample_type = DetDataSample if kind.startswith('RGBTDet') else SegDataSample
    samples = [
        sample_type(metainfo=dict(img_path=f'{i}.jpg', img_shape=(8, 8)))
        for i in range(3)
    ]
    # a black thermal frame, a live one, a grey one with a spread of 2
    images = frames([0, None, 0])
    images[2][3, 0, 0] = 2
    out = pre(dict(inputs=images, data_samples=samples), training=False)
    marks = [s.metainfo.get('missing_modalities') for s in out['data_samples']]
    assert marks == [['thermal'], None, ['thermal']]
    assert pre.dead_camera.counts == dict(rgb=0, thermal=2)
    # in training nothing is looked at
    fresh = [sample_type(metainfo=dict(img_shape=(8, 8))) for _ in range(3)]
    out = pre(dict(inputs=frames([0, None, 0]), data_samples=fresh), training=True)
    assert all('missing_modalities' not in s.metainfo for s in out['data_samples'])


def test_the_tolerance_logging_and_what_is_never_marked(monkeypatch):
    from mwam_mm.models import data_preprocessors
    logged = []
    monkeypatch.setattr(data_preprocessors, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    pre = make(dead_camera=dict(tolerance=2, log_every=2))
    spread3 = frames([0])
    spread3[0][3, 0, 0] = 3
    samples = samples_of(1)
    pre(dict(inputs=spread3, data_samples=samples))
    assert 'missing_modalities' not in samples[0].metainfo  # a live camera
    # both cameras constant: nothing marked (a sample needs one), said so
    both = frames([7], rgb_spread=0)
    samples = samples_of(1)
    pre(dict(inputs=both, data_samples=samples))
    assert 'missing_modalities' not in samples[0].metainfo
    assert 'every camera is constant in 0.jpg' in logged[-1]
    # already marked missing: not counted again
    marked = samples_of(1, missing_modalities=['thermal'])
    pre(dict(inputs=frames([0]), data_samples=marked))
    assert marked[0].metainfo['missing_modalities'] == ['thermal']
    assert pre.dead_camera.counts['thermal'] == 0
    for _ in range(3):
        pre(dict(inputs=frames([0]), data_samples=samples_of(1)))
    said = [m for m in logged if 'thermal frame' in m]
    assert len(said) == 2  # the first and the second (log_every=2), not the third
    assert 'the thermal frame of 0.jpg is constant (spread <= 2): thermal treated ' \
        'as missing (1 frame(s) so far)' in said[0]


@pytest.mark.parametrize('options,message', [
    (dict(tolerance=-1), 'tolerance must be a number >= 0, got -1'),
    (dict(tolerance='2'), "tolerance must be a number >= 0, got '2'"),
    (dict(log_every=0), 'log_every must be an integer >= 1, got 0'),
])
def test_dead_camera_options_are_checked(options, message):
    with pytest.raises(
            ValueError, match=f'RGBTDetDataPreprocessor.dead_camera: '
            f'{message}'):
        make(dead_camera=options)
