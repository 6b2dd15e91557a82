"""Transforms that act on one modality of the stacked image."""
from typing import List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmengine.registry import TRANSFORMS

from ...modality import LayoutLike, Modality, ModalityLayout

FILL_MODES = ('zero', 'mean')


def fill_value(modality: Modality, fill: str) -> np.ndarray:
    """Pixel value(s) a blanked modality is filled with, in storage order.

    ``'zero'``: black (a dead or covered camera). ``'mean'``: the modality's mean,
    which the preprocessor normalises to exactly 0.
    """
    if fill not in FILL_MODES:
        raise ValueError(f'unknown fill {fill!r}; expected one of {FILL_MODES}')
    if fill == 'zero':
        return np.zeros(modality.channels, dtype=np.float32)
    mean = np.asarray(modality.mean, dtype=np.float32)
    return mean[::-1].copy() if modality.bgr_to_rgb else mean  # stored BGR


def blank_modalities(img: np.ndarray, layout: ModalityLayout,
                     names: Sequence[str], fill: str) -> np.ndarray:
    """Return a copy of ``img`` (H x W x C) with the given modalities blanked."""
    img = img.copy()
    for name in names:
        value = fill_value(layout[name], fill)
        img[..., layout.channel_slice(name)] = value.astype(img.dtype)
    return img


@TRANSFORMS.register_module()
class PerModality(BaseTransform):
    """Apply 3-channel (photometric) transforms to one modality's channels only.

    Stock photometric transforms (``PhotoMetricDistortion``, ``YOLOXHSVRandomAug``,
    ...) expect a 3-channel BGR image. This wrapper hands them the modality's channels
    alone; a 1-channel modality is replicated to 3 channels first and averaged back
    afterwards (so brightness and contrast apply, hue and saturation have no effect
    on grey). The wrapped transforms must not change the image size.

    Args:
        transforms (list[dict]): Transforms to apply.
        modality (str): Name of the modality they apply to.
        modalities (list[dict], optional): Modality layout; ``None`` for default.
    """

    def __init__(self,
                 transforms: List[dict],
                 modality: str,
                 modalities: LayoutLike = None):
        self.layout = ModalityLayout.build(modalities)
        self.modality = self.layout[modality]
        self.transforms = Compose(transforms)

    def transform(self, results: dict) -> Optional[dict]:
        img = results['img']
        part = img[..., self.layout.channel_slice(self.modality.name)]
        grey = self.modality.channels == 1
        if grey:
            part = np.repeat(part, 3, axis=2)
        sub = dict(results, img=np.ascontiguousarray(part))
        sub = self.transforms(sub)
        if sub is None:
            return None
        out = sub['img']
        if out.shape[:2] != img.shape[:2]:
            raise ValueError(
                f'PerModality({self.modality.name!r}): a wrapped transform changed '
                f'the image size from {img.shape[:2]} to {out.shape[:2]}; only '
                'photometric transforms may be applied to one modality')
        if grey:
            out = out.mean(axis=2, keepdims=True)
        img = img.copy()  # the stacked image keeps its dtype
        if np.issubdtype(img.dtype, np.integer):
            out = np.clip(np.round(out), 0, np.iinfo(img.dtype).max)
        img[..., self.layout.channel_slice(self.modality.name)] = out.astype(img.dtype)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(modality={self.modality.name!r}, '
                f'transforms={self.transforms})')


@TRANSFORMS.register_module()
class ModalityDropout(BaseTransform):
    """Randomly blank one modality of a training sample.

    With probability ``prob`` one modality, drawn by ``weights`` (uniform by
    default), is filled with ``fill``; at least one modality is always kept.

    Args:
        prob (float): Probability of dropping a modality. Defaults to 0.5.
        fill (str): ``'zero'`` or ``'mean'`` (see :func:`fill_value`).
        weights (dict, optional): ``{modality: relative probability}``.
        modalities (list[dict], optional): Modality layout; ``None`` for default.
    """

    def __init__(self,
                 prob: float = 0.5,
                 fill: str = 'zero',
                 weights: Optional[dict] = None,
                 modalities: LayoutLike = None):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'ModalityDropout: prob must be in [0, 1], got {prob}')
        if fill not in FILL_MODES:
            raise ValueError(f'ModalityDropout: unknown fill {fill!r}; expected one '
                             f'of {FILL_MODES}')
        self.layout = ModalityLayout.build(modalities)
        weights = dict(weights or {m: 1.0 for m in self.layout.names})
        self.layout.check_subset(list(weights))
        total = float(sum(weights.values()))
        if total <= 0:
            raise ValueError(f'ModalityDropout: weights must sum to > 0, got {weights}')
        self.names = list(weights)
        self.probs = np.array([weights[n] / total for n in self.names])
        self.prob = prob
        self.fill = fill

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.prob:
            name = self.names[np.random.choice(len(self.names), p=self.probs)]
            results['img'] = blank_modalities(results['img'], self.layout, [name],
                                              self.fill)
            results['dropped_modalities'] = [name]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, fill={self.fill!r}, '
                f'modalities={self.names})')


@TRANSFORMS.register_module()
class BlankModality(BaseTransform):
    """Blank the given modalities of every sample (missing-camera evaluation).

    Args:
        blank (str | list[str]): Modality name(s) to blank; empty blanks nothing.
        fill (str): ``'zero'`` or ``'mean'`` (see :func:`fill_value`).
        modalities (list[dict], optional): Modality layout; ``None`` for default.
    """

    def __init__(self,
                 blank: Union[str, Sequence[str]] = (),
                 fill: str = 'zero',
                 modalities: LayoutLike = None):
        self.layout = ModalityLayout.build(modalities)
        blank = [blank] if isinstance(blank, str) else list(blank)
        self.blank = self.layout.check_subset(blank)
        if len(self.blank) == len(self.layout):
            raise ValueError('BlankModality: blanking every modality leaves no input;'
                             f' got {self.blank}')
        if fill not in FILL_MODES:
            raise ValueError(f'BlankModality: unknown fill {fill!r}; expected one of '
                             f'{FILL_MODES}')
        self.fill = fill

    def transform(self, results: dict) -> dict:
        if self.blank:
            results['img'] = blank_modalities(results['img'], self.layout,
                                              self.blank, self.fill)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(blank={self.blank}, '
                f'fill={self.fill!r})')
