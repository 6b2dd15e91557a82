"""Loading an aligned multimodal image pair as one stacked array."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.registry import TRANSFORMS

from ...modality import LayoutLike, ModalityLayout


def decode_file(path: str, flag: str, backend_args: Optional[dict] = None,
                imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read and decode an image file; errors name the file."""
    try:
        content = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {path}') from None
    img = mmcv.imfrombytes(content, flag=flag, backend=imdecode_backend)
    if img is None:
        raise ValueError(f'cannot decode image file {path} '
                         f'({len(content)} bytes): not a readable image')
    return img


def read_image(path: str, channels: int, backend_args: Optional[dict] = None,
               imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read ``path`` as an ``H x W x channels`` uint8 array (BGR for 3 channels).

    A 3-channel file read as 1 channel is converted to grey, a grey file read as 3
    channels is replicated, so 3-channel grey thermal files (LLVIP, M3FD) and
    1-channel ones load alike.
    """
    img = decode_file(path, 'grayscale' if channels == 1 else 'color',
                      backend_args, imdecode_backend)
    if img.ndim == 2:
        img = img[..., None]
    return img


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

    Added keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        modalities (list[dict], optional): Modality layout; ``None`` for the default
            RGB (3 channels) + thermal (1 channel). A thermal modality with
            ``channels=3`` keeps the file's three channels.
        to_float32 (bool): Convert to float32. Defaults to False (uint8).
        imdecode_backend (str): mmcv decoding backend. Defaults to 'cv2'.
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self,
                 modalities: LayoutLike = None,
                 to_float32: bool = False,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None):
        self.layout = ModalityLayout.build(modalities)
        self.to_float32 = to_float32
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def _load_stacked(self, path: str) -> np.ndarray:
        img = decode_file(path, 'unchanged', self.backend_args,
                          self.imdecode_backend)
        channels = 1 if img.ndim == 2 else img.shape[2]
        if channels != self.layout.num_channels:
            raise ValueError(
                f'LoadRGBTImagePair: {path} has {channels} channel(s); the modality '
                f'layout {self.layout!r} needs {self.layout.num_channels} stacked '
                'in one file (e.g. RGBA: RGB + thermal)')
        if img.dtype != np.uint8:
            raise ValueError(f'LoadRGBTImagePair: {path} is {img.dtype}, expected '
                             '8-bit channels')
        return img

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
            images.append(read_image(path, m.channels, self.backend_args,
                                     self.imdecode_backend))
            paths.append(path)
        h, w = images[0].shape[:2]
        for img, path in zip(images[1:], paths[1:]):
            if img.shape[:2] != (h, w):
                raise ValueError(
                    'LoadRGBTImagePair: the images of one sample differ in size: '
                    f'{paths[0]} is {w}x{h} (WxH), {path} is '
                    f'{img.shape[1]}x{img.shape[0]}; RGB-T pairs must be aligned')
        img = np.concatenate(images, axis=2)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(modalities={self.layout!r}, '
                f'to_float32={self.to_float32})')


@TRANSFORMS.register_module()
class LoadRGBTSegAnnotations(BaseTransform):
    """mmseg's ``LoadAnnotations`` for RGB-T samples, with the label map checked.

    After loading (and ``reduce_zero_label``/``label_map``, as mmseg does), fails
    with the file's name when the label map is not single-channel, when its size
    differs from the loaded image's original size, or when it holds values outside
    ``[0, num_classes)`` other than the ignore index. Put it after
    ``LoadRGBTImagePair``.

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
