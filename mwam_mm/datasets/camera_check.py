"""A build-time check that each modality's files come from the right kind of camera.

Two mistakes load without any error and quietly ruin a run:

- the ``visible`` and ``infrared`` folders swapped (or ``data_prefix['img']``
  pointing at thermal images): every "RGB" image is grey, three equal channels;
- false-colour (palette) thermal images, e.g. a camera's "ironbow" preview:
  loading reduces them to luminance, which does not follow temperature.

:class:`CameraCheckMixin` reads a few files of a dataset when it is fully
initialized (at build time, or at the first access with ``lazy_init=True``) and
warns, or raises, naming them.

Tolerances, on 8-bit values (16-bit files are read at 8 bits; the check only
compares channels): a pixel's *spread* is its largest minus its smallest channel.

- An RGB image is grey when fewer than :data:`GREY_FRACTION` (1 %) of its pixels
  spread more than :data:`GREY_SPREAD` (8 levels). JPEG rounding of grey content
  stays within a few levels; even dark night images of colour cameras have far
  more colour noise than that. Grey RGB is reported only when it is grey in every
  sampled pair: a few grey frames (a night camera mode) are plausible.
- A thermal image is colour when more than :data:`COLOUR_FRACTION` (20 %) of its
  pixels spread more than :data:`COLOUR_SPREAD` (24 levels): well above JPEG
  chroma noise on grey images, while a small coloured overlay (a logo, a
  timestamp, whose colour JPEG smears over the 16x16 blocks around it) stays
  under the fraction; palettes colour nearly every pixel. One-channel and 16-bit
  thermal files are grey by construction.
"""
import logging
from typing import List, Optional, Sequence

import cv2
import numpy as np
from mmengine.fileio import get
from mmengine.logging import print_log

#: Values of the datasets' ``camera_check`` argument.
CAMERA_CHECK_MODES = ('warn', 'error', 'off')
#: Most pairs read (spread evenly over the data list, first and last included).
MAX_SAMPLES = 8
GREY_SPREAD = 8
GREY_FRACTION = 0.01
COLOUR_SPREAD = 24
COLOUR_FRACTION = 0.2


def sample_indices(length: int, num: int = MAX_SAMPLES) -> List[int]:
    """Up to ``num`` indices spread evenly over ``range(length)`` (deterministic)."""
    if length <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, length - 1, min(num, length))})


def spread_fraction(img: np.ndarray, spread: int) -> float:
    """Fraction of pixels whose channels differ by more than ``spread``."""
    if img.ndim < 3 or img.shape[2] < 3:
        return 0.0
    img = img[..., :3].astype(np.int16)
    return float(np.mean(img.max(axis=2) - img.min(axis=2) > spread))


def is_grey(img: np.ndarray) -> bool:
    return spread_fraction(img, GREY_SPREAD) < GREY_FRACTION


def is_colour(img: np.ndarray) -> bool:
    return spread_fraction(img, COLOUR_SPREAD) > COLOUR_FRACTION


def _read(path: str, stacked: bool,
          backend_args: Optional[dict]) -> Optional[np.ndarray]:
    """The image, downscaled, as 8 bits; None where it cannot be read.

    Unreadable files are left to the loading pipeline, whose errors name them.
    """
    try:
        buffer = np.frombuffer(get(path, backend_args=backend_args), np.uint8)
        # a stacked file keeps all its channels (RGB + thermal); separate files
        # decode at half size, replicating grey to three channels
        flag = cv2.IMREAD_UNCHANGED if stacked else cv2.IMREAD_REDUCED_COLOR_2
        img = cv2.imdecode(buffer, flag) if buffer.size else None
    except Exception:
        return None
    if img is None or img.size == 0:
        return None
    if stacked:
        img = img[::2, ::2]
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        return None
    return img if img.ndim == 3 else img[..., None]


def camera_problems(infos: Sequence[dict],
                    backend_args: Optional[dict] = None) -> List[str]:
    """What is wrong with the cameras of the data infos ``infos`` (a sample).

    Infos hold ``img_path`` and ``thermal_path``, or ``stacked_path`` (RGB in
    channels 0-2, thermal after them, as MFNet's RGBA files).
    """
    rgb_read: List[str] = []
    rgb_grey: List[str] = []
    thermal_colour: List[str] = []
    for info in infos:
        if info.get('stacked_path'):
            rgb_path = thermal_path = info['stacked_path']
            img = _read(rgb_path, True, backend_args)
            if img is None or img.shape[2] < 4:
                continue
            # a one-channel thermal part cannot be colour; three can
            rgb, thermal = img[..., :3], img[..., 3:6] if img.shape[2] >= 6 else None
        else:
            rgb_path, thermal_path = info.get('img_path'), info.get('thermal_path')
            rgb = _read(rgb_path, False, backend_args) if rgb_path else None
            thermal = _read(thermal_path, False, backend_args) if thermal_path \
                else None
        if rgb is not None:
            rgb_read.append(rgb_path)
            if is_grey(rgb):
                rgb_grey.append(rgb_path)
        if thermal is not None and is_colour(thermal):
            thermal_colour.append(thermal_path)
    problems = []
    if rgb_read and len(rgb_grey) == len(rgb_read):
        problems.append(
            f'the RGB images are grey (three equal channels) in all '
            f'{len(rgb_read)} sampled pair(s): {_shown(rgb_grey)}. Are the visible '
            "and infrared folders swapped, or does data_prefix['img'] point at the "
            'thermal images?')
    if thermal_colour:
        problems.append(
            f'{len(thermal_colour)} of the sampled thermal images are colour '
            f'(false-colour palette?): {_shown(thermal_colour)}. Loading reduces '
            'them to luminance, which does not follow temperature; use the '
            "camera's grey (or radiometric) images. Or are the visible and infrared "
            'folders swapped?')
    return problems


def _shown(paths: Sequence[str], num: int = 4) -> str:
    more = f' (and {len(paths) - num} more)' if len(paths) > num else ''
    return ', '.join(paths[:num]) + more


class CameraCheckMixin:
    """Runs :func:`camera_problems` on a sample of the data list at full init.

    The pairs are read from the final data list (after filtering and
    ``indices``). Put it before the dataset base class: it takes its option
    before ``BaseDataset.__init__``, which may fully initialize the dataset.

    Args:
        camera_check (str): One of :data:`CAMERA_CHECK_MODES`: ``'warn'``
            (default) logs a warning naming the files, ``'error'`` raises,
            ``'off'`` reads nothing.
        *args, **kwargs: Arguments of the dataset base class.
    """

    def __init__(self, *args, camera_check: str = 'warn', **kwargs):
        if camera_check not in CAMERA_CHECK_MODES:
            raise ValueError(f"{type(self).__name__}: camera_check must be 'warn', "
                             f"'error' or 'off', got {camera_check!r}")
        self.camera_check = camera_check
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        self.check_cameras()

    def check_cameras(self) -> None:
        if self.camera_check == 'off':
            return
        infos = [self.get_data_info(i) for i in sample_indices(len(self))]
        problems = camera_problems(infos, getattr(self, 'backend_args', None))
        if not problems:
            return
        name = type(self).__name__
        text = f'{name}: ' + f'\n{name}: '.join(problems)
        if self.camera_check == 'error':
            raise ValueError(f"{text}\n(camera_check='warn' or 'off' lets the "
                             'dataset build)')
        print_log(
            f"{text} (camera_check='error' makes this an error, 'off' skips the "
            'check)',
            logger='current',
            level=logging.WARNING)
