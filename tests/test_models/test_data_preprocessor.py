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
