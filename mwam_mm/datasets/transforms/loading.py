"""Loading an aligned multimodal image pair as one stacked array."""
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.registry import TRANSFORMS

from ...modality import LayoutLike, ModalityLayout


def read_image(path: str, channels: int, backend_args: Optional[dict] = None,
               imdecode_backend: str = 'cv2') -> np.ndarray:
    """Read ``path`` as an ``H x W x channels`` uint8 array (BGR for 3 channels).

    A 3-channel file read as 1 channel is converted to grey, a grey file read as 3
    channels is replicated, so 3-channel grey thermal files (LLVIP, M3FD) and
    1-channel ones load alike.
    """
    try:
        content = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {path}') from None
    flag = 'grayscale' if channels == 1 else 'color'
    img = mmcv.imfrombytes(content, flag=flag, backend=imdecode_backend)
    if img is None:
        raise ValueError(f'cannot decode image file {path} '
                         f'({len(content)} bytes): not a readable image')
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

    def transform(self, results: dict) -> dict:
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
