"""Base class of paired RGB-thermal detection datasets with VOC XML annotations."""
import os
import os.path as osp
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple

from mmdet.datasets import BaseDetDataset
from mmengine.fileio import list_from_file


def check_classes(classes, source: str) -> Tuple[str, ...]:
    """Classes must be a sequence of names (``('person',)``, not ``('person')``)."""
    if isinstance(classes, str):
        raise TypeError(
            f'{source}: classes must be a tuple of names, got the string '
            f"{classes!r}; write ({classes!r},) with a trailing comma")
    classes = tuple(classes)
    if not classes or not all(isinstance(c, str) for c in classes):
        raise TypeError(f'{source}: classes must be a non-empty tuple of names, '
                        f'got {classes!r}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'{source}: classes has duplicates: {classes}')
    return classes


def _read_xml(path: str) -> ET.Element:
    with open(path, 'rb') as f:
        text = f.read()
    try:
        return ET.fromstring(text)
    except ET.ParseError as first_error:
        # Real files carry stray bytes after the root element (editor comments);
        # keep up to the root's closing tag and try once more.
        match = re.search(rb'</annotation\s*>', text)
        if match is not None:
            try:
                return ET.fromstring(text[:match.end()])
            except ET.ParseError:
                pass
        raise ValueError(f'{path}: malformed XML annotation ({first_error})') from None


def _number(node: ET.Element, tag: str, path: str, where: str) -> float:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ValueError(f'{path}: {where} has no <{tag}> value')
    try:
        return float(child.text.strip())
    except ValueError:
        raise ValueError(f'{path}: {where} <{tag}> is {child.text.strip()!r}, '
                         'not a number') from None


def parse_voc_xml(path: str,
                  cat2label: Dict[str, int],
                  ignore_classes: Sequence[str] = (),
                  tolerance: float = 1.0) -> dict:
    """Parse one VOC XML file into mmdet's ``width``/``height``/``instances``.

    Tolerates what real RGB-T files contain: no XML declaration, stray text after a
    tag or after the root, a ``<depth>`` that disagrees with the image. Fails with
    the file's name on what would lose or corrupt data: an unknown class (unless
    listed in ``ignore_classes``), a missing or non-numeric coordinate, an empty box,
    or a box more than ``tolerance`` pixels outside the ``<size>`` it declares.

    ``difficult`` objects get ``ignore_flag=1`` as in mmdet's VOC datasets.
    Coordinates are used as written (pixel corners, no 1-based shift).
    """
    root = _read_xml(path)
    size = root.find('size')
    width = height = None
    if size is not None and size.find('width') is not None:
        width = int(_number(size, 'width', path, '<size>'))
        height = int(_number(size, 'height', path, '<size>'))
        if width <= 0 or height <= 0:
            width = height = None  # unknown size: boxes are not range-checked
    instances = []
    for i, obj in enumerate(root.findall('object')):
        name_node = obj.find('name')
        name = name_node.text.strip() if name_node is not None and \
            name_node.text else ''
        where = f'object {i} ({name or "no name"})'
        if name in ignore_classes:
            continue
        if name not in cat2label:
            raise ValueError(
                f'{path}: {where} has class {name!r}, which is not among the '
                f'dataset classes {tuple(cat2label)}; map it or list it in '
                'ignore_classes')
        box = obj.find('bndbox')
        if box is None:
            raise ValueError(f'{path}: {where} has no <bndbox>')
        x1, y1, x2, y2 = (_number(box, t, path, where)
                          for t in ('xmin', 'ymin', 'xmax', 'ymax'))
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f'{path}: {where} has an empty box '
                             f'[{x1}, {y1}, {x2}, {y2}]')
        if width is not None and (x1 < -tolerance or y1 < -tolerance
                                  or x2 > width + tolerance
                                  or y2 > height + tolerance):
            raise ValueError(
                f'{path}: {where} box [{x1}, {y1}, {x2}, {y2}] lies outside the '
                f'{width}x{height} image the file declares')
        if width is not None:
            x1, y1 = max(x1, 0.0), max(y1, 0.0)
            x2, y2 = min(x2, float(width)), min(y2, float(height))
        difficult = obj.find('difficult')
        difficult = difficult is not None and (difficult.text or '').strip() == '1'
        instances.append(
            dict(bbox=[x1, y1, x2, y2], bbox_label=cat2label[name],
                 ignore_flag=int(difficult)))
    return dict(width=width, height=height, instances=instances)


class RGBTDetDataset(BaseDetDataset):
    """Aligned RGB-thermal pairs with one VOC XML annotation per pair.

    Subclasses say where a sample's files are (:meth:`sample_files`) and how the
    sample names are listed (:meth:`list_stems`). Each data info holds ``img_path``
    (RGB), ``thermal_path``, ``width``, ``height`` and ``instances``, the keys
    :class:`mwam_mm.datasets.LoadRGBTImagePair` and mmdet's transforms use.

    Args:
        ann_file (str): A split file with one sample name per line, relative to
            ``data_root``; empty for the dataset's default listing.
        data_prefix (dict): Folders ``img`` (RGB), ``thermal`` and ``ann``
            (annotations), relative to ``data_root``.
        img_suffix (str): File suffix of RGB images.
        thermal_suffix (str): File suffix of thermal images.
        ignore_classes (Sequence[str]): Class names in the files to drop silently
            (e.g. FLIR's stray ``dog``). Any other unknown name is an error.
        require_annotations (bool): A missing XML file is an error (default). If
            False such samples get no instances (unannotated test images).
        box_tolerance (float): Pixels a box may exceed the declared image size
            (then clipped) before it is an error. Defaults to 1.
        **kwargs: Arguments of ``mmdet.datasets.BaseDetDataset``.
    """

    def __init__(self,
                 *args,
                 img_suffix: str = '.jpg',
                 thermal_suffix: str = '.jpg',
                 ignore_classes: Sequence[str] = (),
                 require_annotations: bool = True,
                 box_tolerance: float = 1.0,
                 **kwargs):
        self.img_suffix = img_suffix
        self.thermal_suffix = thermal_suffix
        self.ignore_classes = tuple(ignore_classes)
        self.require_annotations = require_annotations
        self.box_tolerance = box_tolerance
        super().__init__(*args, **kwargs)

    # hooks for subclasses -------------------------------------------------
    def list_stems(self) -> List[str]:
        """Sample names: the split file's lines, or the RGB folder's images."""
        if self.ann_file:
            return self._read_split_file(self.ann_file)
        return self._list_folder(self.data_prefix.get('img', ''), self.img_suffix)

    def sample_files(self, stem: str) -> Dict[str, str]:
        """``img_path``, ``thermal_path`` and ``ann_path`` of sample ``stem``."""
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''),
                              stem + self.img_suffix),
            thermal_path=osp.join(self.data_prefix.get('thermal', ''),
                                  stem + self.thermal_suffix),
            ann_path=osp.join(self.data_prefix.get('ann', ''), stem + '.xml'))

    # ------------------------------------------------------------------------
    def _check_data_root(self) -> None:
        if self.data_root and not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root {self.data_root!r} is not a '
                'directory; set data_root in the dataset config to where the '
                'dataset lies')

    def _read_split_file(self, path: str) -> List[str]:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{type(self).__name__}: split file {path} not '
                                    'found')
        stems = [line.strip() for line in list_from_file(path) if line.strip()]
        if not stems:
            raise ValueError(f'{type(self).__name__}: split file {path} is empty')
        return [osp.splitext(s)[0] if s.endswith(self.img_suffix) else s
                for s in stems]

    def _list_folder(self, folder: str, suffix: str) -> List[str]:
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{type(self).__name__}: folder {folder!r} not found (data_root '
                f'{self.data_root!r}, data_prefix {self.data_prefix})')
        stems = sorted(
            f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix))
        if not stems:
            raise ValueError(f'{type(self).__name__}: no *{suffix} files in '
                             f'{folder}')
        return stems

    def load_data_list(self) -> List[dict]:
        self._check_data_root()
        classes = check_classes(self.metainfo.get('classes', ()),
                                type(self).__name__)
        self.cat2label = {c: i for i, c in enumerate(classes)}
        data_list = []
        for stem in self.list_stems():
            files = self.sample_files(stem)
            for key in ('img_path', 'thermal_path'):
                if not osp.isfile(files[key]):
                    partner = 'thermal' if key == 'thermal_path' else 'RGB'
                    raise FileNotFoundError(
                        f'{type(self).__name__}: sample {stem!r}: the {partner} image '
                        f'{files[key]} does not exist')
            ann_path = files.pop('ann_path')
            if osp.isfile(ann_path):
                info = parse_voc_xml(ann_path, self.cat2label, self.ignore_classes,
                                     self.box_tolerance)
            elif self.require_annotations:
                raise FileNotFoundError(
                    f'{type(self).__name__}: sample {stem!r}: annotation {ann_path} '
                    'does not exist (require_annotations=False accepts '
                    'unannotated samples)')
            else:
                info = dict(width=None, height=None, instances=[])
            data_list.append(dict(files, img_id=stem, **info))
        return data_list

    def filter_data(self) -> List[dict]:
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if filter_empty_gt and not any(
                    not i['ignore_flag'] for i in info['instances']):
                continue
            if info['width'] is not None and min(info['width'],
                                                 info['height']) < min_size:
                continue
            kept.append(info)
        return kept
