"""Bringing high-bit-depth images (16-bit radiometric thermal) to the 0-255 input
scale, and reporting the images whose range says the camera is faulty.

The default conversion, ``'robust'``, stretches each image between its 0.5 and 99.5
percentiles, so that a few hot or dead sensor pixels do not set the range; images
whose range is set by a handful of pixels, and constant images, are reported in the
log (rate-limited). Used by :class:`LoadRGBTImagePair`'s ``depth_scaling``.
"""
import logging
import math
from typing import Optional, Tuple, Union

import numpy as np
from mmengine.logging import print_log

DEPTH_MODES = ('robust', 'minmax', 'raw')
DEFAULT_DEPTH_SCALING = 'robust'
DepthSpec = Union[str, Tuple[float, float]]
# 'robust' maps these percentiles of each image to 0 and 255. 0.5 % of a 640x512
# frame is ~1600 pixels: far more than a sensor's hot/dead pixels (a handful to
# tens), so they never set the range, while only the hottest/coldest 0.5 % of a
# normal scene saturates (they stay the brightest/darkest input, only their
# internal contrast is lost); for an image without outliers the result is close to
# min-max (the fixture of the tests: 1517 of 1742 raw levels).
ROBUST_PERCENTILES = (0.5, 99.5)
# "Range set by a handful of pixels": at least one and at most
# max(OUTLIER_MAX_COUNT, OUTLIER_MAX_FRACTION * pixels) pixels lie more than
# OUTLIER_SPANS times the percentile range beyond it. Sensor noise does not reach
# that far and real heat sources (people, engines, the sun) cover more pixels, so
# normal images do not trigger it; hot or dead pixels (often 0 or 65535) do.
OUTLIER_SPANS = 2.0
OUTLIER_MAX_COUNT = 16
OUTLIER_MAX_FRACTION = 1e-4


def check_depth_spec(spec, where: str) -> DepthSpec:
    """Validate one ``depth_scaling`` entry: 'robust', 'minmax', 'raw' or
    ``(low, high)``."""
    if isinstance(spec, str):
        if spec not in DEPTH_MODES:
            raise ValueError(f'{where}: unknown depth scaling {spec!r}; expected '
                             f"one of {DEPTH_MODES} or a (low, high) range")
        return spec
    if isinstance(spec, (list, tuple)) and len(spec) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in spec) and spec[0] < spec[1]:
        return float(spec[0]), float(spec[1])
    raise ValueError(f'{where}: depth scaling {spec!r} is neither one of '
                     f'{DEPTH_MODES} nor a (low, high) range of two finite numbers '
                     'with low < high, e.g. (7000, 9000)')


class _RateLimitedLog:
    """Warnings of one kind, at most once per source and ``first`` in full.

    Per process (every dataloader worker logs its own). After ``first`` sources,
    only a count is logged, at 100, 1000, ... occurrences: a camera with a stuck
    pixel would otherwise log once for every frame of the data set. Sources are
    remembered up to ``remember`` of them (bounded memory); beyond, repeated loads
    of one file are counted again.
    """

    def __init__(self, kind: str, first: int = 10, remember: int = 4096):
        self.kind = kind
        self.first = first
        self.remember = remember
        self.reset()

    def reset(self) -> None:
        self.seen = set()
        self.count = 0

    def __call__(self, source: str, message: str) -> None:
        if source in self.seen:
            return
        if len(self.seen) < self.remember:
            self.seen.add(source)
        self.count += 1
        if self.count <= self.first:
            suffix = (f' (further {self.kind} warnings are counted, not shown)'
                      if self.count == self.first else '')
            print_log(message + suffix, logger='current', level=logging.WARNING)
        elif self.count >= 100 and str(self.count).strip('0') == '1':
            print_log(
                f'LoadRGBTImagePair: {self.count} images with {self.kind} so far in '
                f'this process; the latest: {message}',
                logger='current',
                level=logging.WARNING)


_OUTLIER_LOG = _RateLimitedLog('a range set by a few outlying pixels')
_CONSTANT_LOG = _RateLimitedLog('every pixel equal')


def reset_depth_warnings() -> None:
    """Forget which files were reported (tests; a new run in the same process)."""
    _OUTLIER_LOG.reset()
    _CONSTANT_LOG.reset()


def _value_stats(img: np.ndarray):
    """``(min, max, low percentile, high percentile, far outlier count)``.

    Percentiles of :data:`ROBUST_PERCENTILES` by the inverted CDF (the smallest
    value with at least that share of pixels at or below it: an actual pixel
    value, as ``np.percentile(method='inverted_cdf')``). uint16 images, the usual
    case, go through one histogram (about 0.6 ms for 640x512, exact; a sort-based
    percentile takes ~5 ms); other dtypes through ``np.percentile``.
    """
    q_low, q_high = ROBUST_PERCENTILES
    n = img.size
    if img.dtype == np.uint16:
        cum = np.cumsum(np.bincount(img.ravel(), minlength=1))
        low, high = np.searchsorted(cum, [q_low / 100 * n, q_high / 100 * n])
        vmin = int(np.searchsorted(cum, 1))  # first value with a pixel
        vmax = len(cum) - 1  # bincount ends at the largest value
        low, high = int(low), int(high)
    else:
        values = img.astype(np.float64, copy=False).ravel()
        vmin, vmax = float(values.min()), float(values.max())
        low, high = (
            float(v)
            for v in np.percentile(values, ROBUST_PERCENTILES, method='inverted_cdf'))
    span = high - low
    far_low, far_high = low - OUTLIER_SPANS * span, high + OUTLIER_SPANS * span
    far = 0
    if vmin < far_low or vmax > far_high:  # the count only when there are any
        far = int(np.count_nonzero(img < far_low) + np.count_nonzero(img > far_high))
    return vmin, vmax, low, high, far


def _fmt(value: float) -> str:
    return f'{value:g}'


def scale_depth(img: np.ndarray,
                spec: DepthSpec,
                source: Optional[str] = None) -> np.ndarray:
    """Bring a high-bit-depth image to float32 on the 0-255 input scale.

    Args:
        img (np.ndarray): The image (any dtype; uint16 for 16-bit files).
        spec: ``'robust'``: ``(v - p_low) / (p_high - p_low) * 255`` clipped to
            ``[0, 255]``, with ``p_low``, ``p_high`` this image's
            :data:`ROBUST_PERCENTILES` (0.5 and 99.5 %); ``'minmax'``: ``(v - min)
            / (max - min) * 255`` over this image; ``(low, high)``: ``(v - low) /
            (high - low) * 255`` clipped to ``[0, 255]``; ``'raw'``: values
            unchanged. Under 'robust' and 'minmax' a constant image becomes 0,
            and an image whose percentiles coincide (over 99 % of its pixels one
            value) but not its min and max is min-max scaled.
        source (str, optional): What the image is (file and modality). When
            given, a constant image and, under 'robust' and 'minmax', an image
            whose range is set by a few far outlying pixels (see
            :data:`OUTLIER_SPANS`) are logged as warnings naming it, once per
            source and rate-limited.
    """
    if spec == 'raw' and source is None:
        return img.astype(np.float32)
    if spec in ('robust', 'minmax'):
        vmin, vmax, p_low, p_high, far = _value_stats(img)
    else:  # a fixed range or 'raw': only the constant-image check needs stats
        vmin, vmax = float(img.min()), float(img.max())
    if source is not None and vmin == vmax:
        _warn_constant(source, vmin, spec)
    img = img.astype(np.float32)
    if spec == 'raw':
        return img
    if spec in ('robust', 'minmax'):
        if source is not None and 0 < far <= max(OUTLIER_MAX_COUNT,
                                                 OUTLIER_MAX_FRACTION * img.size):
            _warn_outliers(source, spec, far, img.size, vmin, vmax, p_low, p_high)
        if spec == 'robust' and p_high > p_low:
            low, high = p_low, p_high
        else:
            low, high = vmin, vmax
        if high <= low:
            return np.zeros_like(img)
        scaled = (img - np.float32(low)) * np.float32(255.0 / (high - low))
        return np.clip(scaled, 0, 255) if spec == 'robust' else scaled
    low, high = spec
    return np.clip((img - low) * np.float32(255.0 / (high - low)), 0, 255)


def _warn_constant(source: str, value: float, spec: DepthSpec) -> None:
    if spec in ('robust', 'minmax'):
        becomes = (f'{spec!r} scaling makes it 0 everywhere, the same input as a '
                   'blanked (black) camera')
    elif spec == 'raw':
        becomes = 'it is kept as it is (raw)'
    else:
        low, high = spec
        level = min(max((value - low) / (high - low) * 255, 0), 255)
        becomes = f'the range {spec} makes it {level:.1f} everywhere'
    _CONSTANT_LOG(
        source, f'LoadRGBTImagePair: {source}: every pixel is {_fmt(value)}, a '
        f'constant image (a dead, covered or disconnected camera?); {becomes}. '
        'Check the file, or drop it from the annotations if it carries no image.')


def _warn_outliers(source: str, spec: str, far: int, size: int, vmin: float,
                   vmax: float, p_low: float, p_high: float) -> None:
    q_low, q_high = ROBUST_PERCENTILES
    rest = (f'{far} pixel(s) of {size} lie far outside the range of the rest of the '
            f'image (min {_fmt(vmin)}, max {_fmt(vmax)}; {_fmt(q_low)}-'
            f'{_fmt(q_high)} percentiles {_fmt(p_low)}-{_fmt(p_high)})')
    if spec == 'minmax':
        levels = 255 * (p_high - p_low) / (vmax - vmin)
        advice = (f"and set its 'minmax' range: {q_high - q_low:g} % of the image "
                  f'gets only {levels:.0f} of the 255 input levels (near black or '
                  "white). Hot or dead sensor pixels? depth_scaling='robust' (the "
                  'default) or a fixed (low, high) range ignores them.')
    else:
        advice = ("and were clipped by the 'robust' scaling (to 0 or 255). Hot or "
                  'dead sensor pixels?')
    _OUTLIER_LOG(source, f'LoadRGBTImagePair: {source}: {rest} {advice}')
