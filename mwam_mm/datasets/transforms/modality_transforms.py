"""Transforms that act on one modality of the stacked image."""
from typing import List, Optional, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmengine.registry import TRANSFORMS

from ...modality import LayoutLike, Modality, ModalityLayout
from ...modality_dropout import FILL_MODES, ModalityDropoutSampler
from ...presence import MISSING_KEY, add_missing


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


def mark_missing(results: dict, names: Sequence[str], layout: ModalityLayout) -> None:
    """Add ``names`` to the sample's ``missing_modalities`` (checked)."""
    results[MISSING_KEY] = add_missing(
        results.get(MISSING_KEY),
        names,
        layout,
        where=results.get('img_path', 'a sample'))


def blank_modalities(img: np.ndarray, layout: ModalityLayout, names: Sequence[str],
                     fill: str) -> np.ndarray:
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
    """Randomly drop modalities of a training sample.

    See :mod:`mwam_mm.modality_dropout` for the protocols and levels. At least one
    modality is always kept. With ``level='input'`` the dropped modalities are
    blanked with ``fill`` and listed under ``dropped_modalities``; with
    ``level='feature'`` the pixels stay and the modalities are added to the
    sample's ``missing_modalities``, which the Pack step must carry (list it in its
    ``meta_keys``; the dataset checks).

    Args:
        prob (float): ``'rate'`` protocol: probability of dropping one modality.
            Defaults to 0.5.
        fill (str): ``'zero'`` or ``'mean'`` (see :func:`fill_value`).
        weights (dict, optional): ``'rate'`` protocol: ``{modality: relative
            probability}`` of being the one dropped.
        protocol (str): ``'rate'`` (default) or ``'subsets'`` (kept subset uniform
            over the non-empty subsets, the authors' protocol).
        level (str): ``'input'`` (default) or ``'feature'``.
        modalities (list[dict], optional): Modality layout; ``None`` for default.
    """

    def __init__(self,
                 prob: float = 0.5,
                 fill: str = 'zero',
                 weights: Optional[dict] = None,
                 protocol: str = 'rate',
                 level: str = 'input',
                 modalities: LayoutLike = None):
        self.sampler = ModalityDropoutSampler(
            protocol=protocol,
            prob=prob,
            weights=weights,
            level=level,
            fill=fill,
            modalities=modalities,
            owner='ModalityDropout')
        self.layout = self.sampler.layout
        self.marks_missing = level == 'feature'

    def transform(self, results: dict) -> dict:
        dropped = self.sampler.draw(np.random.rand)
        if not dropped:
            return results
        if self.marks_missing:
            mark_missing(results, dropped, self.layout)
        else:
            results['img'] = blank_modalities(results['img'], self.layout, dropped,
                                              self.sampler.fill)
            results['dropped_modalities'] = dropped
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.sampler!r})'


@TRANSFORMS.register_module()
class BlankModality(BaseTransform):
    """Blank the given modalities of every sample (missing-camera evaluation).

    Args:
        blank (str | list[str]): Modality name(s) to blank; empty blanks nothing.
        fill (str): ``'zero'`` or ``'mean'`` (see :func:`fill_value`).
        mark_missing (bool): Also tell the model: add the blanked modalities to the
            sample's ``missing_modalities`` (the ``missing`` robustness scenario).
            Default False: the model is not told (the ``blank`` scenario).
        modalities (list[dict], optional): Modality layout; ``None`` for default.
    """

    def __init__(self,
                 blank: Union[str, Sequence[str]] = (),
                 fill: str = 'zero',
                 mark_missing: bool = False,
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
        self.marks_missing = bool(mark_missing)

    def transform(self, results: dict) -> dict:
        if self.blank:
            results['img'] = blank_modalities(results['img'], self.layout, self.blank,
                                              self.fill)
            if self.marks_missing:
                mark_missing(results, self.blank, self.layout)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(blank={self.blank}, '
                f'fill={self.fill!r}, mark_missing={self.marks_missing})')
