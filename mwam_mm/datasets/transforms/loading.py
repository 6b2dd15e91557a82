"""Loading an aligned multimodal image pair as one stacked array.

Images with more than 8 bits per channel (16-bit radiometric thermal, as real thermal
cameras and several RGB-T releases store it) are read at their full depth and brought
to the 0-255 input scale by a configurable conversion (see
:class:`LoadRGBTImagePair`'s ``depth_scaling``), never cut to 8 bits by the decoder.
The conversions, and the warnings about images whose range says a camera is faulty,
are in :mod:`.depth_scaling`.
"""
import os
from typing import Dict, Optional, Tuple, Union

import cv2
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.registry import TRANSFORMS

from ...modality import LayoutLike, ModalityLayout
from .depth_scaling import (DEFAULT_DEPTH_SCALING, DepthSpec, check_depth_spec,
                            scale_depth)

# cv2's grey/colour decoding converts 16-bit files to 8 bits unless ANYDEPTH is set;
# with it, 8-bit files decode exactly as before and 16-bit ones keep their values.
_CV2_FLAGS = {
    'grayscale': cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH,
    'color': cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH,
    'unchanged': cv2.IMREAD_UNCHANGED,
}


def decode_file(path: str,
                flag: str,
                backend_args: Optional[dict] = None,
                imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read and decode an image file at its full bit depth; errors name the file.

    Args:
        path (str): The file.
        flag (str): ``'color'``, ``'grayscale'`` or ``'unchanged'``.
        backend_args (dict, optional): mmengine file backend arguments.
        imdecode_backend (str): mmcv decoding backend. With ``'cv2'`` (default)
            16-bit files keep 16 bits; other backends decode as mmcv does.
    """
    try:
        content = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {path}') from None
    if len(content) == 0:
        # cv2 only says "!buf.empty()", without the file
        raise ValueError(f'cannot decode image file {path}: the file is empty '
                         '(0 bytes); re-copy or re-extract it')
    cv2_flag = _CV2_FLAGS.get(flag, flag) if imdecode_backend == 'cv2' else flag
    try:
        img = mmcv.imfrombytes(content, flag=cv2_flag, backend=imdecode_backend)
    except Exception as e:  # the decoders' own errors do not name the file
        raise ValueError(f'cannot decode image file {path} ({len(content)} bytes): '
                         f'{type(e).__name__}: {e}') from None
    if img is None or img.size == 0:
        raise ValueError(f'cannot decode image file {path} '
                         f'({len(content)} bytes): not a readable image')
    return img


def read_image(path: str,
               channels: int,
               backend_args: Optional[dict] = None,
               imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read ``path`` as an ``H x W x channels`` array (BGR for 3 channels).

    8-bit files give uint8; files of more bits (16-bit thermal) keep their depth
    (uint16), to be scaled by :func:`scale_depth`. A 3-channel file read as 1
    channel is converted to grey, a grey file read as 3 channels is replicated, so
    3-channel grey thermal files (LLVIP, M3FD) and 1-channel ones load alike.
    """
    img = decode_file(path, 'grayscale' if channels == 1 else 'color', backend_args,
                      imdecode_backend)
    if img.ndim == 2:
        img = img[..., None]
    return img


def image_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of an image file, read from its header only.

    Cheap (no decoding), for checking annotations against the real image at
    dataset-building time. The EXIF orientation is applied as the decoder applies
    it, so the size is the one the loaded image will have.
    """
    from PIL import Image, UnidentifiedImageError
    try:
        size = os.path.getsize(path)
    except OSError:
        raise FileNotFoundError(f'image file not found: {path}') from None
    if size == 0:
        raise ValueError(f'cannot read image file {path}: the file is empty '
                         '(0 bytes); re-copy or re-extract it')
    try:
        with Image.open(path) as im:
            width, height = im.size
            try:
                orientation = im.getexif().get(0x0112, 1)
            except Exception:  # a damaged EXIF block: the decoder ignores it too
                orientation = 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f'cannot read image file {path} ({size} bytes): not a '
                         f'readable image ({e})') from None
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees when decoded
        width, height = height, width
    return int(width), int(height)


def check_same_size(images, sources, owner: str = 'LoadRGBTImagePair') -> None:
    """Refuse the images of one sample unless they share height and width.

    Args:
        images (list[np.ndarray]): The modalities' images (``H x W [x C]``).
        sources (list[str]): What each image is (its file), for the message.
        owner (str): The transform named in the message.
    """
    h, w = images[0].shape[:2]
    for img, source in zip(images[1:], sources[1:]):
        if img.shape[:2] != (h, w):
            raise ValueError(
                f'{owner}: the images of one sample differ in size: '
                f'{sources[0]} is {w}x{h} (WxH), {source} is '
                f'{img.shape[1]}x{img.shape[0]}; RGB-T pairs must be aligned')


@TRANSFORMS.register_module()
class LoadRGBTImagePair(BaseTransform):
    """Load every modality's image of a sample and stack them channel-wise.

    Reads the file of each modality from ``results[modality.path_key]``
    (``img_path`` for RGB, ``thermal_path`` for thermal by default), checks that they
    have the same height and width, and stores ``results['img']`` as
    ``H x W x (sum of channels)`` in the order of the modality layout. Geometric
    transforms then move all modalities together.

    A sample whose modalities share one file (MFNet's RGBA PNG: RGB then thermal)
    gives it as ``results['stacked_path']``: the file is read unchanged and must
    have exactly the layout's number of channels, in layout order.

    **High bit depth.** A file with more than 8 bits per channel (16-bit
    radiometric thermal, e.g. values 7000-9000) is read at its full depth, never
    cut to 8 bits, and brought to the 0-255 scale that the modality's mean/std
    expect as ``depth_scaling`` says. The stacked image is then float32 (8-bit
    modalities keep their values). 8-bit files are loaded exactly as before
    (uint8), so nothing changes for 8-bit datasets.

    Added keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        modalities (list[dict], optional): Modality layout; ``None`` for the default
            RGB (3 channels) + thermal (1 channel). A thermal modality with
            ``channels=3`` keeps the file's three channels.
        to_float32 (bool): Convert to float32. Defaults to False (uint8 for 8-bit
            files).
        imdecode_backend (str): mmcv decoding backend. Defaults to 'cv2' (the one
            that keeps 16 bits).
        backend_args (dict, optional): File backend arguments.
        depth_scaling (str | tuple | dict): Conversion of high-bit-depth images:

            - ``'robust'`` (default): per image and modality, the 0.5 and 99.5
              percentiles of the values (:data:`ROBUST_PERCENTILES`) map to 0 and
              255, clipped: full contrast in every image, like a camera's
              automatic gain, without letting a few hot or dead sensor pixels set
              the range (under min-max, three pixels at 65535 leave the rest of an
              image near black). Only the hottest and coldest 0.5 % of the pixels
              saturate. Absolute temperatures are not comparable between images.
              Fits the default thermal mean/std (128, 64).
            - ``'minmax'``: per image and modality, ``(v - min) / (max - min) *
              255``: every value kept distinct, but one outlying pixel sets the
              range (the behaviour before 'robust' became the default).
            - ``(low, high)``: a fixed range, ``(v - low) / (high - low) * 255``
              clipped to 0-255: one raw value means the same input in every image
              (pick the range of the scenes' values, e.g. ``(7000, 9000)``). Fits
              the default thermal mean/std.
            - ``'raw'``: the values as stored (float32). Give the modality a mean
              and std in raw units in the modality layout of every component (e.g.
              ``dict(name='thermal', mean=(8000.,), std=(500.,))``).
            - a dict ``{modality name: one of the above}``; modalities not listed
              use ``'robust'``.

            Reported as warnings in the log, naming the file and the values, once
            per file and at most 10 files per kind and process (then a count at
            100, 1000, ...): a constant high-bit-depth image (every pixel equal:
            a dead or covered camera; 'robust' and 'minmax' make it 0, like a
            blanked camera), under any scaling; under 'robust' and 'minmax', an
            image whose range is set by a handful of pixels: between 1 and
            ``max(16, 0.01 % of the pixels)`` lie more than twice the percentile
            range beyond it (hot or dead pixels; normal scenes have no such
            pixels).
    """

    def __init__(self,
                 modalities: LayoutLike = None,
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None,
                 depth_scaling: Union[DepthSpec,
                                      Dict[str, DepthSpec]] = DEFAULT_DEPTH_SCALING):
        self.layout = ModalityLayout.build(modalities)
        self.to_float32 = to_float32
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args
        where = 'LoadRGBTImagePair'
        if isinstance(depth_scaling, dict):
            self.layout.check_subset(list(depth_scaling))
            self.depth_scaling = {
                m.name:
                check_depth_spec(
                    depth_scaling.get(m.name, DEFAULT_DEPTH_SCALING),
                    f'{where} depth_scaling[{m.name!r}]')
                for m in self.layout
            }
        else:
            spec = check_depth_spec(depth_scaling, f'{where} depth_scaling')
            self.depth_scaling = {m.name: spec for m in self.layout}

    def _load_stacked(self, path: str) -> np.ndarray:
        img = decode_file(path, 'unchanged', self.backend_args, self.imdecode_backend)
        if img.ndim == 2:
            img = img[..., None]
        channels = img.shape[2]
        if channels != self.layout.num_channels:
            raise ValueError(
                f'LoadRGBTImagePair: {path} has {channels} channel(s); the modality '
                f'layout {self.layout!r} needs {self.layout.num_channels} stacked '
                'in one file (e.g. RGBA: RGB + thermal)')
        if img.dtype == np.uint8:
            return img
        # one file, one depth: each modality's channels are scaled on their own
        out = np.empty(img.shape, np.float32)
        for m in self.layout:
            part = self.layout.channel_slice(m.name)
            out[..., part] = scale_depth(img[..., part], self.depth_scaling[m.name],
                                         f'{path} ({m.name} channels)')
        return out

    def _stack(self, images, names, sources) -> np.ndarray:
        if all(img.dtype == np.uint8 for img in images):
            return np.concatenate(images, axis=2)
        scaled = [
            img.astype(np.float32) if img.dtype == np.uint8 else scale_depth(
                img, self.depth_scaling[name], f'{source} ({name})')
            for img, name, source in zip(images, names, sources)
        ]
        return np.concatenate(scaled, axis=2)

    def transform(self, results: dict) -> dict:
        if results.get('stacked_path'):
            img = self._load_stacked(results['stacked_path'])
            if self.to_float32:
                img = img.astype(np.float32)
            results['img'] = img
            results['img_shape'] = img.shape[:2]
            results['ori_shape'] = img.shape[:2]
            return results
        images, paths = [], []
        for m in self.layout:
            path = results.get(m.path_key)
            if not path:
                raise KeyError(
                    f'LoadRGBTImagePair: the sample has no {m.path_key!r} for modality '
                    f'{m.name!r} (sample keys: {sorted(results)}); the dataset must '
                    'give every modality its file')
            images.append(
                read_image(path, m.channels, self.backend_args, self.imdecode_backend))
            paths.append(path)
        return self._store_stacked(results, images, paths)

    def _store_stacked(self, results: dict, images: list, sources: list) -> dict:
        """Check the sizes, stack the images in layout order, set the keys."""
        check_same_size(images, sources, type(self).__name__)
        img = self._stack(images, self.layout.names, sources)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(modalities={self.layout!r}, '
                f'to_float32={self.to_float32}, '
                f'depth_scaling={self.depth_scaling})')


def as_modality_array(image, modality, owner: str) -> np.ndarray:
    """An in-memory image as ``H x W x channels`` of ``modality``.

    Converted as :func:`read_image` converts files: a 3-channel (BGR) image of a
    1-channel modality becomes grey, a 1-channel image of a 3-channel modality is
    replicated. uint8 and uint16 (high bit depth) arrays only.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{owner}: the {modality.name} image must be a numpy array '
                        f'or a file path, got {type(image).__name__}')
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f'{owner}: the {modality.name} array has dtype {image.dtype}; '
                        'give uint8 (8-bit) or uint16 (high bit depth) images')
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f'{owner}: the {modality.name} array has shape '
                         f'{image.shape}; expected H x W or H x W x C')
    channels = image.shape[2]
    if channels == modality.channels:
        return image
    if channels == 3 and modality.channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[..., None]
    if channels == 1 and modality.channels == 3:
        return np.repeat(image, 3, axis=2)
    raise ValueError(f'{owner}: the {modality.name} array has {channels} channels; '
                     f'the modality has {modality.channels} (1 or 3 channels accepted)')


@TRANSFORMS.register_module()
class LoadRGBTImagePairFromNDArray(LoadRGBTImagePair):
    """:class:`LoadRGBTImagePair` for images already in memory (inference on
    arrays, video frames).

    Reads ``results['modality_images']``, ``{modality name: image}`` for every
    modality of the layout; an image is a numpy array (``H x W`` or ``H x W x C``,
    3 channels in BGR order as OpenCV gives them; uint8, or uint16 scaled as
    ``depth_scaling`` says) or a file path (read as :class:`LoadRGBTImagePair`
    reads it, and stored under the modality's ``path_key``). A 3-channel array of
    a 1-channel modality is converted to grey, a 1-channel array of a 3-channel
    modality replicated. Same size check, stacking and keys as
    :class:`LoadRGBTImagePair`; ``modality_images`` is removed.

    Args:
        Those of :class:`LoadRGBTImagePair`.
    """

    def transform(self, results: dict) -> dict:
        owner = type(self).__name__
        given = results.pop('modality_images', None)
        if not isinstance(given, dict):
            raise KeyError(f'{owner}: the sample needs modality_images, a dict '
                           f'{{modality: array or path}} (sample keys: '
                           f'{sorted(results)})')
        self.layout.check_subset(list(given))
        images, sources = [], []
        for m in self.layout:
            image = given.get(m.name)
            if image is None:
                raise KeyError(f'{owner}: no image for modality {m.name!r}; '
                               f'modality_images has {sorted(given)}')
            if isinstance(image, (str, os.PathLike)):
                path = str(image)
                images.append(
                    read_image(path, m.channels, self.backend_args,
                               self.imdecode_backend))
                results[m.path_key] = path
                sources.append(path)
            else:
                images.append(as_modality_array(image, m, owner))
                sources.append(f'the {m.name} image')
        return self._store_stacked(results, images, sources)


@TRANSFORMS.register_module()
class LoadRGBTSegAnnotations(BaseTransform):
    """mmseg's ``LoadAnnotations`` for RGB-T samples, with the label map checked.

    After loading (and ``reduce_zero_label``/``label_map``, as mmseg does), fails
    with the file's name when the label file is empty or cannot be decoded, when
    the label map is not single-channel, when its size differs from the loaded
    image's original size, or when it holds values outside ``[0, num_classes)``
    other than the ignore index. Put it after ``LoadRGBTImagePair``.

    Args:
        **kwargs: Arguments of ``mmseg.datasets.transforms.LoadAnnotations``.
    """

    def __init__(self, **kwargs):
        from mmseg.datasets.transforms import LoadAnnotations
        self.loader = LoadAnnotations(**kwargs)

    def transform(self, results: dict) -> dict:
        path = results.get('seg_map_path')
        if not path:
            raise KeyError('LoadRGBTSegAnnotations: the sample has no seg_map_path '
                           f'(keys: {sorted(results)})')
        try:
            results = self.loader(results)
        except FileNotFoundError:
            raise FileNotFoundError(f'label file not found: {path}') from None
        except Exception as e:
            # mmseg decodes without a check: an empty file gives cv2's bare
            # "!buf.empty()", an undecodable one a NoneType AttributeError
            raise ValueError(f'{path}: cannot read the label map '
                             f'({_label_file_problem(path)}): '
                             f'{type(e).__name__}: {e}') from None
        seg = results['gt_seg_map']
        if seg.ndim != 2:
            raise ValueError(f'{path}: label map has shape {seg.shape}; expected one '
                             'channel of class indices (not a colour image)')
        # labels stay at the image's original size (mmseg resizes only images
        # in test pipelines), so that is what they must match
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and seg.shape != tuple(ori_shape[:2]):
            image = results.get('stacked_path') or results.get('img_path')
            raise ValueError(
                f'{path}: label map is {seg.shape[1]}x{seg.shape[0]} (WxH), the '
                f'image {image} is {ori_shape[1]}x{ori_shape[0]}')
        num_classes = results.get('num_classes')
        if num_classes is not None:
            ignore = results.get('ignore_index', 255)
            values = np.unique(seg)
            bad = [int(v) for v in values if v >= num_classes and v != ignore]
            if bad:
                raise ValueError(
                    f'{path}: label values {bad} are outside the {num_classes} '
                    f'classes (0-{num_classes - 1}) and not the ignore index '
                    f'{ignore}')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.loader!r})'


def _label_file_problem(path: str) -> str:
    try:
        size = os.path.getsize(path)
    except OSError:
        return 'not a local file'
    if size == 0:
        return 'the file is empty (0 bytes)'
    return f'{size} bytes, not a readable image'
