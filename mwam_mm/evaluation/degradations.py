"""Degradations of one modality, with severity levels, for robustness tests.

In the spirit of the corruption benchmarks of detection (ImageNet-C, Hendrycks &
Dietterich 2019; COCO-C / "Benchmarking Robustness in Object Detection", Michaelis
et al. 2019): each degradation is a registered test-pipeline transform that changes
the channels of ONE modality of the stacked image (the others are left bit-exact),
at a severity from 1 (mild) to 5 (severe):

- ``noise``: additive Gaussian noise, sigma = level x the value range;
  levels .08 .12 .18 .26 .38 (ImageNet-C's ``gaussian_noise``);
- ``blur``: Gaussian blur, sigma = level pixels; levels 1 2 3 4 6 (ImageNet-C);
- ``low-light``: gamma then darkening, ``f * t ** g`` on the value scaled to
  [0, 1]; levels (g, f) = (1.5, .8) (2, .6) (2.5, .45) (3, .3) (3.5, .2);
- ``overexposure``: exposure raised by EV stops (gain ``2 ** EV``), saturating at
  the top of the range; levels EV .5 1 1.5 2 2.5;
- ``shift``: the modality translated by k pixels against the others, in a
  direction drawn per image, the uncovered border repeating the edge; levels
  k = 1 2 4 8 16.

Pixel values are on the ``value_range`` scale (0-255 by default, the input scale).
The levels of ``low-light``, ``overexposure`` and ``shift`` are ours (ImageNet-C has
no such corruptions); every class takes ``levels=`` to use another table.
``low-light`` and ``overexposure`` model a visible-light camera and are planned for
RGB only (:data:`PLANNED_FOR`; a thermal camera does not see light: on thermal the
same transform is a contrast change of its gain). The transforms accept any
modality, and :func:`degradation_plan` applies them to any modality named
explicitly.

Deterministic per image: the random parts (the noise, the shift's direction) come
from a generator seeded by ``seed``, the image's file name (not its folder, so a
moved dataset degrades alike), the degradation and the modality; not by the
severity, so the severities of one image share their draws (severity 5's noise is
severity 1's scaled): runs, models and severities compare on the same draws.

The transforms go right after ``LoadRGBTImagePair`` (see
:func:`degradation_pipeline`): at the image's stored resolution, before resizing,
as a camera would deliver it.
"""
import copy
import os.path as osp
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.registry import TRANSFORMS

from ..modality import LayoutLike, ModalityLayout
from .statistics import relative_score

SEVERITIES = (1, 2, 3, 4, 5)
#: degradation name -> registered transform type, in registration order
DEGRADATIONS: Dict[str, str] = {}
#: degradation name -> the modalities a default plan applies it to (None: all)
PLANNED_FOR: Dict[str, Optional[Tuple[str, ...]]] = {}
# keys of a sample that name its file, most specific first; their stem seeds the
# per-image generator
_NAME_KEYS = ('img_path', 'stacked_path', 'thermal_path', 'seg_map_path', 'img_id')


def register_degradation(name: str, modalities: Optional[Sequence[str]] = None):
    """Register a :class:`ModalityDegradation` subclass under ``name``.

    The class goes into mmengine's root ``TRANSFORMS`` registry under its class
    name, and into :data:`DEGRADATIONS` under ``name`` (the name the tools take).

    Args:
        name (str): The degradation's name in plans, tools and reports.
        modalities (Sequence[str], optional): The modalities a default plan
            applies it to; None for all.
    """

    def wrap(cls):
        if name in DEGRADATIONS and DEGRADATIONS[name] != cls.__name__:
            raise KeyError(f'degradation {name!r} is already registered as '
                           f'{DEGRADATIONS[name]}')
        TRANSFORMS.register_module(module=cls, force=True)
        cls.degradation = name
        DEGRADATIONS[name] = cls.__name__
        PLANNED_FOR[name] = tuple(modalities) if modalities else None
        return cls

    return wrap


def check_degradations(names: Sequence[str]) -> List[str]:
    """The names as a list; an unknown one is an error listing the known ones."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in DEGRADATIONS]
    if unknown:
        raise KeyError(f'unknown degradation(s) {unknown}; known: {list(DEGRADATIONS)}')
    return names


def check_severity(severity, levels: Sequence) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or \
            not 1 <= severity <= len(levels):
        raise ValueError(f'severity must be an integer from 1 to {len(levels)}, '
                         f'got {severity!r}')
    return int(severity)


def image_stem(results: dict) -> str:
    """The sample's file name without folder and suffix (seeds its generator)."""
    for key in _NAME_KEYS:
        value = results.get(key)
        if value:
            return osp.splitext(osp.basename(str(value)))[0]
    if results.get('sample_idx') is not None:
        return f'sample{results["sample_idx"]}'
    raise KeyError('a degradation needs the sample to name its file (one of '
                   f'{_NAME_KEYS}) or its sample_idx, to seed it per image; the '
                   f'sample has the keys {sorted(results)}')


class ModalityDegradation(BaseTransform):
    """Base class: degrade one modality's channels of the stacked image.

    Subclasses set ``LEVELS`` (one entry per severity) and implement
    :meth:`draw` (this image's parameters) and :meth:`degrade`. The result is
    clipped to ``value_range`` and, for an integer image, rounded; the other
    modalities' channels are not touched. The parameters applied are appended to
    ``results['degradations']`` (for inspection; not packed).

    Args:
        modality (str): The modality to degrade.
        severity (int): 1 (mild) to ``len(levels)`` (5 by default).
        seed (int): Seed of the per-image generator. Defaults to 0.
        levels (Sequence, optional): The parameter per severity, replacing the
            class's ``LEVELS``.
        value_range (tuple[float, float]): The pixel scale: results are clipped to
            it, noise and exposure are relative to it. Defaults to ``(0, 255)``,
            the input scale of 8-bit images and of the loader's scaled 16-bit
            thermal; give the raw range for ``depth_scaling='raw'``.
        modalities (list[dict], optional): Modality layout; None for the default.
    """
    LEVELS: Tuple = ()
    degradation = ''

    def __init__(self,
                 modality: str,
                 severity: int = 3,
                 seed: int = 0,
                 levels: Optional[Sequence] = None,
                 value_range: Tuple[float, float] = (0.0, 255.0),
                 modalities: LayoutLike = None):
        self.layout = ModalityLayout.build(modalities)
        self.modality = self.layout[modality].name
        self.levels = tuple(self.LEVELS if levels is None else levels)
        if not self.levels:
            raise ValueError(f'{type(self).__name__}: levels must not be empty')
        self.severity = check_severity(severity, self.levels)
        self.seed = int(seed)
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f'{type(self).__name__}: value_range must be (low, '
                             f'high) with high > low, got {tuple(value_range)}')
        self.value_range = (low, high)

    @property
    def level(self):
        return self.levels[self.severity - 1]

    def generator(self, results: dict) -> np.random.Generator:
        """The per-image generator (file name, seed, degradation, modality)."""
        words = (image_stem(results), self.degradation, self.modality)
        return np.random.default_rng([self.seed] +
                                     [zlib.crc32(w.encode('utf-8')) for w in words])

    def draw(self, rng: np.random.Generator, shape: Tuple[int, ...]) -> dict:
        """This image's random parameters (none by default)."""
        return {}

    def degrade(self, part: np.ndarray, params: dict,
                rng: np.random.Generator) -> np.ndarray:
        """``part`` (H x W x C float32, the modality's channels) degraded."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        img = results['img']
        channels = self.layout.channel_slice(self.modality)
        if img.ndim != 3 or img.shape[2] != self.layout.num_channels:
            raise ValueError(
                f'{type(self).__name__}: expected the stacked H x W x '
                f'{self.layout.num_channels} image of {self.layout!r}, got shape '
                f'{img.shape}; put it right after LoadRGBTImagePair')
        part = img[..., channels].astype(np.float32)
        rng = self.generator(results)
        params = self.draw(rng, part.shape)
        out = self.degrade(part, params, rng)
        out = np.clip(out, *self.value_range)
        if np.issubdtype(img.dtype, np.integer):
            out = np.round(out)
        img = img.copy()
        img[..., channels] = out.astype(img.dtype)
        results['img'] = img
        record = dict(
            name=self.degradation,
            modality=self.modality,
            severity=self.severity,
            level=self.level,
            **params)
        results['degradations'] = list(results.get('degradations', [])) + [record]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(modality={self.modality!r}, '
                f'severity={self.severity}, level={self.level!r}, seed={self.seed})')


@register_degradation('noise')
class ModalityGaussianNoise(ModalityDegradation):
    """Additive Gaussian noise; sigma = level * (high - low) of ``value_range``
    (ImageNet-C's ``gaussian_noise`` levels)."""
    LEVELS = (0.08, 0.12, 0.18, 0.26, 0.38)

    def degrade(self, part, params, rng):
        sigma = self.level * (self.value_range[1] - self.value_range[0])
        # drawn at unit scale: every severity scales the same draws
        return part + sigma * rng.standard_normal(part.shape, dtype=np.float32)


@register_degradation('blur')
class ModalityGaussianBlur(ModalityDegradation):
    """Gaussian blur, sigma = level pixels (ImageNet-C's ``gaussian_blur``), the
    kernel truncated at 4 sigma, borders reflected."""
    LEVELS = (1.0, 2.0, 3.0, 4.0, 6.0)

    def degrade(self, part, params, rng):
        sigma = float(self.level)
        size = 2 * int(np.ceil(4 * sigma)) + 1
        out = cv2.GaussianBlur(
            part, (size, size), sigma, sigma, borderType=cv2.BORDER_REFLECT_101)
        return out.reshape(part.shape)  # cv2 drops a single channel axis


@register_degradation('low-light', modalities=('rgb', ))
class ModalityLowLight(ModalityDegradation):
    """Low light: ``low + (high - low) * f * t ** g`` with ``t`` the value scaled to
    [0, 1]; level ``(g, f)``: the gamma darkens the mid-tones most, ``f`` the whole
    image (ours)."""
    LEVELS = ((1.5, 0.8), (2.0, 0.6), (2.5, 0.45), (3.0, 0.3), (3.5, 0.2))

    def degrade(self, part, params, rng):
        gamma, factor = self.level
        low, high = self.value_range
        t = np.clip((part - low) / (high - low), 0.0, 1.0)
        return low + (high - low) * factor * t**gamma


@register_degradation('overexposure', modalities=('rgb', ))
class ModalityOverExposure(ModalityDegradation):
    """Over-exposure by ``level`` EV stops: ``low + (x - low) * 2 ** level``,
    saturating at the top of ``value_range`` (ours)."""
    LEVELS = (0.5, 1.0, 1.5, 2.0, 2.5)

    def degrade(self, part, params, rng):
        low = self.value_range[0]
        return low + (part - low) * np.float32(2.0**self.level)


@register_degradation('shift')
class ModalityShift(ModalityDegradation):
    """The modality translated by ``level`` pixels against the other modalities.

    The direction is drawn per image (uniform angle; the offset is ``(round(k
    cos a), round(k sin a))``, positive x right, positive y down); the uncovered
    border repeats the nearest edge pixel, as a misaligned camera still sees
    scene there (ours).
    """
    LEVELS = (1, 2, 4, 8, 16)

    def draw(self, rng, shape):
        angle = float(rng.uniform(0.0, 2.0 * np.pi))
        return dict(
            dx=int(round(self.level * np.cos(angle))),
            dy=int(round(self.level * np.sin(angle))))

    def degrade(self, part, params, rng):
        h, w = part.shape[:2]
        rows = np.clip(np.arange(h) - params['dy'], 0, h - 1)
        cols = np.clip(np.arange(w) - params['dx'], 0, w - 1)
        return part[rows][:, cols]


def degradation_step(degradation: str,
                     modality: str,
                     severity: int,
                     seed: int = 0,
                     **kwargs) -> dict:
    """The pipeline step (config dict) of one degradation."""
    check_degradations([degradation])
    return dict(
        type=DEGRADATIONS[degradation],
        modality=modality,
        severity=severity,
        seed=seed,
        **kwargs)


def loader_index(pipeline: Sequence[dict], purpose: str) -> int:
    """Index of the test pipeline's ``LoadRGBTImagePair`` step, after which a
    robustness step (to ``purpose``) goes."""
    for index, step in enumerate(pipeline):
        if step.get('type') == 'LoadRGBTImagePair':
            return index
    raise ValueError(
        f'the test pipeline has no LoadRGBTImagePair step to {purpose} after; its '
        f'steps: {[t.get("type") for t in pipeline]}')


def degradation_pipeline(pipeline: List[dict],
                         degradation: str,
                         modality: str,
                         severity: int,
                         seed: int = 0,
                         **kwargs) -> List[dict]:
    """``pipeline`` (a copy) with the degradation right after ``LoadRGBTImagePair``.

    The step gets the loader's ``modalities``, so both agree on the layout.
    Extra keyword arguments go to the transform (``levels``, ``value_range``).
    """
    pipeline = copy.deepcopy(list(pipeline))
    index = loader_index(pipeline, 'degrade a modality')
    step = degradation_step(degradation, modality, severity, seed, **kwargs)
    step['modalities'] = pipeline[index].get('modalities')
    pipeline.insert(index + 1, step)
    return pipeline


def degradation_plan(
        layout: LayoutLike = None,
        degradations: Optional[Sequence[str]] = None,
        severities: Sequence[int] = SEVERITIES,
        modalities: Optional[Sequence[str]] = None) -> List[Tuple[str, str, int]]:
    """The ``(degradation, modality, severity)`` triples to test.

    By default each degradation goes to the modalities :data:`PLANNED_FOR`
    allows it (``low-light`` and ``overexposure``: RGB only); with
    ``modalities`` given, every named degradation goes to every named modality.

    Args:
        layout: The modality layout; None for the default.
        degradations (Sequence[str], optional): Names; default all registered.
        severities (Sequence[int]): Default 1-5.
        modalities (Sequence[str], optional): Modalities to degrade; default
            each degradation's planned ones.
    """
    layout = ModalityLayout.build(layout)
    names = check_degradations(
        list(DEGRADATIONS) if degradations is None else degradations)
    targets = layout.names if modalities is None else layout.check_subset(
        list(modalities))
    for s in severities:
        check_severity(s, SEVERITIES)
    plan = []
    for name in names:
        allowed = PLANNED_FOR.get(name) if modalities is None else None
        for modality in targets:
            if allowed is not None and modality not in allowed:
                continue
            plan += [(name, modality, int(s)) for s in severities]
    if not plan:
        raise ValueError(f'nothing to test: degradations {names} are planned for '
                         f'none of the modalities {targets} ({PLANNED_FOR}); name '
                         'the modalities to degrade')
    return plan


def summarize_degradations(clean: Optional[float],
                           scores: Dict[str, Dict[str, Dict[str, float]]],
                           lower_better: bool = False) -> dict:
    """Robustness per modality from ``{degradation: {modality: {severity: score}}}``.

    Following Michaelis et al. (2019): ``mPC`` is the mean score over the
    degradations and severities applied to the modality, ``rPC = mPC / clean``
    (the robustness score: 1 = unaffected); per degradation, the mean over
    severities and its ratio to ``clean``. Ratios are None when their divisor
    is 0. With ``lower_better`` (a miss rate) the ratios are ``clean / mPC``, so
    that below 1 is worse for every metric
    (:func:`~mwam_mm.evaluation.relative_score`).

    Returns:
        dict: ``clean``, ``modalities: {m: {mPC, rPC}}`` and
        ``degradations: {d: {m: {mean, relative}}}``.
    """

    def ratio(x):
        return relative_score(x, clean, lower_better)

    per_modality: Dict[str, List[float]] = {}
    per_degradation = {}
    for name, per_mod in scores.items():
        per_degradation[name] = {}
        for modality, per_severity in per_mod.items():
            values = [float(v) for v in per_severity.values()]
            per_modality.setdefault(modality, []).extend(values)
            mean = sum(values) / len(values)
            per_degradation[name][modality] = dict(mean=mean, relative=ratio(mean))
    modalities = {}
    for modality, values in per_modality.items():
        mpc = sum(values) / len(values)
        modalities[modality] = dict(mPC=mpc, rPC=ratio(mpc))
    return dict(clean=clean, modalities=modalities, degradations=per_degradation)
