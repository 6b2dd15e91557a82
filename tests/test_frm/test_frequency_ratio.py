import numpy as np
import pytest
import torch
from scipy.fft import dctn

from mwam_mm import FrequencyRatioMetric, frequency_ratio_metric
from mwam_mm.frm import dct_bands


def reference_frm(images, p=8, q=2, sigma=1e-6):
    """The paper's formula, patch by patch, with scipy's orthonormal DCT-II."""
    x = images.numpy().astype(np.float64)
    b, c, h, w = x.shape
    total = 0.0
    for bi in range(b):
        for ci in range(c):
            for i in range(h // p):
                for j in range(w // p):
                    coeffs = dctn(
                        x[bi, ci, i * p:(i + 1) * p, j * p:(j + 1) * p],
                        type=2,
                        norm='ortho')
                    low = coeffs[:q, :q]
                    high = coeffs[p - q:, p - q:][::-1, ::-1]
                    total += np.abs(low / (high + sigma)).sum()
    return total


def structured(b=2, c=3, h=24, w=32):
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    ramp = (xx + 2 * yy).float() / (h + w)
    checker = ((xx // 3 + yy // 3) % 2).float()
    stripes = torch.sin(xx.float() * 1.7) + 0.3 * torch.cos(yy.float() * 2.3)
    planes = [ramp + 0.5 * checker, stripes, ramp * stripes + 0.1]
    img = torch.stack(planes[:c])
    return torch.stack([img * (k + 1) + 0.05 * k for k in range(b)])


@pytest.mark.parametrize('shape', [(2, 3, 16, 24), (1, 1, 8, 8), (3, 2, 32, 16)])
def test_paper_mode_matches_scipy_on_random_input(shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    ours = frequency_ratio_metric(x).item()
    assert ours == pytest.approx(reference_frm(x), rel=1e-9)


def test_paper_mode_matches_scipy_on_structured_input():
    x = structured()
    assert frequency_ratio_metric(x).item() == pytest.approx(reference_frm(x), rel=1e-9)


@pytest.mark.parametrize('p,q', [(8, 1), (8, 4), (4, 2)])
def test_other_patch_and_band_sizes(p, q):
    torch.manual_seed(1)
    x = torch.randn(1, 2, 16, 16)
    ours = frequency_ratio_metric(x, patch_size=p, band_size=q).item()
    assert ours == pytest.approx(reference_frm(x, p, q), rel=1e-9)


def test_bands_are_the_paired_corner_coefficients():
    torch.manual_seed(2)
    x = torch.randn(1, 1, 8, 16)
    low, high = dct_bands(x)
    coeffs = dctn(x[0, 0, :, 8:].double().numpy(), norm='ortho')
    # low (a, b) pairs with high (7 - a, 7 - b): (0,0)~(7,7), (0,1)~(7,6) ...
    np.testing.assert_allclose(low[0, 0, 0, 1].numpy(), coeffs[:2, :2], atol=1e-12)
    expected_high = np.array([[coeffs[7, 7], coeffs[7, 6]],
                              [coeffs[6, 7], coeffs[6, 6]]])
    np.testing.assert_allclose(high[0, 0, 0, 1].numpy(), expected_high, atol=1e-12)


def test_remainder_rows_and_columns_are_cropped():
    torch.manual_seed(3)
    x = torch.randn(2, 3, 21, 30)  # 2 x 3 whole patches, remainder 5 rows, 6 cols
    assert frequency_ratio_metric(x).item() == pytest.approx(
        frequency_ratio_metric(x[:, :, :16, :24]).item(), rel=1e-12)
    noisy = x.clone()
    noisy[:, :, 16:, :] = 1e6  # the cropped remainder does not count
    noisy[:, :, :, 24:] = -1e6
    assert frequency_ratio_metric(noisy).item() == pytest.approx(
        frequency_ratio_metric(x).item(), rel=1e-12)


def test_input_smaller_than_a_patch_is_an_error():
    with pytest.raises(ValueError, match='smaller than one 8x8 patch'):
        frequency_ratio_metric(torch.zeros(1, 1, 7, 32))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        frequency_ratio_metric(torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match='band_size'):
        frequency_ratio_metric(torch.zeros(1, 1, 16, 16), band_size=5)
    with pytest.raises(ValueError, match='unknown FRM mode'):
        frequency_ratio_metric(torch.zeros(1, 1, 16, 16), mode='fast')


@pytest.mark.parametrize('mode', ['paper', 'robust'])
@pytest.mark.parametrize('name,image', [
    ('all-zero', torch.zeros(2, 3, 32, 32)),
    ('constant', torch.full((2, 3, 32, 32), 0.7)),
    ('saturated', torch.full((2, 1, 32, 32), 255.0)),
    ('normalised blank', torch.full((2, 1, 32, 32), -2.0)),
    ('half saturated',
     torch.cat([torch.zeros(1, 3, 32, 16),
                torch.full((1, 3, 32, 16), 255.0)], dim=3)),
])
def test_no_nan_or_inf_on_degenerate_inputs(mode, name, image):
    value = frequency_ratio_metric(image, mode=mode)
    assert torch.isfinite(value), f'{mode} FRM of {name} image is {value}'
    assert value >= 0


def test_paper_mode_guards_an_exactly_zero_denominator():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    # a patch whose (7,7) coefficient is exactly -sigma and DC is 1
    from mwam_mm.frm.frequency_ratio import _dct_matrix
    d = _dct_matrix(8)
    coeffs = torch.zeros(8, 8, dtype=torch.float64)
    coeffs[0, 0] = 1.0
    coeffs[7, 7] = -1e-6
    x[0, 0] = d.t() @ coeffs @ d  # inverse DCT
    value = frequency_ratio_metric(x)
    assert torch.isfinite(value)


def test_robust_mode_is_scale_invariant_and_bounded():
    torch.manual_seed(4)
    x = structured() + 0.05 * torch.randn(2, 3, 24, 32)
    a = frequency_ratio_metric(x, mode='robust')
    b = frequency_ratio_metric(x * 37.0, mode='robust')
    assert a.item() == pytest.approx(b.item(), rel=1e-6)  # float32 input rounding
    bound = 64 / (4 * 1e-2)
    assert frequency_ratio_metric(
        torch.full((1, 1, 16, 16), 3.0), mode='robust') <= bound


def test_smooth_images_score_higher_than_noise():
    torch.manual_seed(5)
    smooth = structured(c=1)
    noise = torch.randn_like(smooth)
    for mode in ('paper', 'robust'):
        assert frequency_ratio_metric(smooth, mode=mode) > \
            frequency_ratio_metric(noise, mode=mode)


def test_module_form_and_no_gradient():
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    module = FrequencyRatioMetric(mode='robust')
    value = module(x)
    assert value.item() == frequency_ratio_metric(x, mode='robust').item()
    assert not value.requires_grad
    assert list(module.parameters()) == []


def test_integer_input_is_accepted():
    x = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    assert frequency_ratio_metric(x).item() == pytest.approx(
        reference_frm(x.double()), rel=1e-9)


# -- the patch grid's offset --------------------------------------------------------


@pytest.mark.parametrize('offset,crop', [(0, (0, 0)), (3, (3, 3)), ((1, 6), (1, 6)),
                                         ((7, 0), (7, 0))])
@pytest.mark.parametrize('mode', ['paper', 'robust'])
def test_grid_offset_is_the_grid_of_the_shifted_image(offset, crop, mode):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 27, 35)
    shifted = x[:, :, crop[0]:, crop[1]:]
    ours = frequency_ratio_metric(x, grid_offset=offset, mode=mode).item()
    assert ours == pytest.approx(
        frequency_ratio_metric(shifted, mode=mode).item(), rel=1e-12)
    if mode == 'paper':
        assert ours == pytest.approx(reference_frm(shifted), rel=1e-9)
    low, high = dct_bands(x, grid_offset=offset)
    assert low.shape[2:4] == ((27 - crop[0]) // 8, (35 - crop[1]) // 8)
    module = FrequencyRatioMetric(mode=mode, grid_offset=offset)
    assert module(x).item() == pytest.approx(ours, rel=1e-12)
    assert 'grid_offset=' in repr(module)


@pytest.mark.parametrize('bad', [8, -1, (0, 8), (1, 2, 3), 'four', 2.0, True, None])
def test_grid_offset_outside_the_patch_is_an_error_naming_it(bad):
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match='grid_offset'):
        frequency_ratio_metric(x, grid_offset=bad)


def test_an_input_without_a_patch_after_the_offset_is_an_error():
    with pytest.raises(ValueError, match=r'grid offset \(4, 4\) is smaller'):
        frequency_ratio_metric(torch.randn(1, 1, 11, 16), grid_offset=4)


def jpeg_roundtrip(image: np.ndarray, quality: int = 75) -> np.ndarray:
    import cv2
    ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def test_a_jpeg_block_grid_inflates_frm_only_on_the_grid():
    """JPEG quantises the 8x8 blocks FRM's grid sits on at offset 0: their high
    band is quantisation residue (often exactly 0), so FRM explodes there and
    nowhere else; the same image before compression does not care."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    scene = 120 + 60 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + rng.normal(
        0, 6, (96, 128))
    scene = np.clip(scene, 0, 255).astype(np.uint8)
    raw = torch.from_numpy(scene.astype(np.float32))[None, None]
    jpeg = torch.from_numpy(jpeg_roundtrip(scene).astype(np.float32))[None, None]

    def frm(x, o):
        return frequency_ratio_metric(x, grid_offset=o).item()

    off_grid = [frm(jpeg, o) for o in range(1, 8)]
    assert frm(jpeg, 0) > 10 * max(off_grid)
    raw_values = [frm(raw, o) for o in range(8)]
    assert max(raw_values) < 3 * min(raw_values)
