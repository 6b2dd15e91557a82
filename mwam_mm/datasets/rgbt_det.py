"""Base class of paired RGB-thermal detection datasets with VOC XML annotations."""
import logging
import math
import os.path as osp
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet.datasets import BaseDetDataset
from mmengine.logging import print_log

from ..compat.resume import SeededSamplesMixin
from ..presence import check_pipeline_carries_missing
from .camera_check import CameraCheckMixin
from .file_lists import (CaseResolver, list_folder_stems, read_split_lines,
                         refuse_duplicates, strip_suffix)
from .transforms.loading import image_size


def check_classes(classes, source: str) -> Tuple[str, ...]:
    """Classes must be a sequence of names (``('person',)``, not ``('person')``)."""
    if isinstance(classes, str):
        raise TypeError(f'{source}: classes must be a tuple of names, got the string '
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
    text = child.text.strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{path}: {where} <{tag}> is {text!r}, '
                         'not a number') from None
    if not math.isfinite(value):  # float() accepts 'nan' and 'inf'
        raise ValueError(f'{path}: {where} <{tag}> is {text!r}, not a finite '
                         'number')
    return value


def check_box(box: Sequence[float],
              image_size: Optional[Tuple[int, int]],
              tolerance: float,
              source: str,
              where: str,
              image: str = '',
              shown=None,
              allow_clipped_away: bool = False) -> List[float]:
    """Check one ``[x1, y1, x2, y2]`` box against its image; return it clipped.

    The one check of every annotation format (VOC XML, COCO JSON), so that no
    path lets through what another refuses.

    Args:
        box (Sequence[float]): Corners ``x1, y1, x2, y2`` in pixels.
        image_size (tuple, optional): ``(width, height)`` of the real image; None
            skips the range check.
        tolerance (float): Pixels a box may exceed the image before it is an error;
            within it the box is clipped to the image.
        source (str): The annotation file, for the message.
        where (str): Which object, for the message (``object 3 (person)``).
        image (str): The image file, for the message.
        shown: The box as the file writes it (COCO: ``[x, y, w, h]``); defaults
            to ``box``.
        allow_clipped_away (bool): Return a box that lies wholly outside the image
            (within the tolerance) clipped to nothing, for the caller to drop,
            instead of raising.

    Raises:
        ValueError: A non-finite coordinate, an empty box, or a box more than
            ``tolerance`` pixels outside the image.
    """
    shown = list(box) if shown is None else shown
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f'{source}: {where} has a non-finite coordinate in its '
                         f'box {shown}')
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f'{source}: {where} has an empty box {shown}')
    if image_size is None:
        return [x1, y1, x2, y2]
    width, height = image_size
    if (x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance
            or y2 > height + tolerance):
        image = f' {image}' if image else ''
        raise ValueError(
            f'{source}: {where} box {shown} lies outside the {width}x{height} '
            f'image{image} (by more than the box_tolerance of {tolerance} px)')
    clipped = [
        max(x1, 0.0),
        max(y1, 0.0),
        min(x2, float(width)),
        min(y2, float(height))
    ]
    if not allow_clipped_away and (clipped[2] <= clipped[0]
                                   or clipped[3] <= clipped[1]):
        image = f' {image}' if image else ''
        raise ValueError(
            f'{source}: {where} box {shown} has no area inside the {width}x{height} '
            f'image{image}')
    return clipped


def parse_voc_xml(path: str,
                  cat2label: Dict[str, int],
                  ignore_classes: Sequence[str] = (),
                  tolerance: float = 1.0,
                  image_size: Optional[Tuple[int, int]] = None,
                  image_path: str = '') -> dict:
    """Parse one VOC XML file into mmdet's ``width``/``height``/``instances``.

    Tolerates what real RGB-T files contain: no XML declaration, stray text after a
    tag or after the root, a ``<depth>`` that disagrees with the image. Fails with
    the file's name, the object and the box on what would lose or corrupt data: an
    unknown class (unless listed in ``ignore_classes``), a missing, non-numeric or
    non-finite (``nan``, ``inf``) coordinate, an empty box, or a box more than
    ``tolerance`` pixels outside the image (see :func:`check_box`).

    Boxes are checked against ``image_size``, the real image's size (read from its
    header by the datasets): a file's ``<size>`` can be wrong. Without
    ``image_size`` the declared ``<size>`` is used.

    ``difficult`` objects get ``ignore_flag=1`` as in mmdet's VOC datasets.
    Coordinates are used as written (pixel corners, no 1-based shift).

    Returns:
        dict: ``width``, ``height`` (the real size when given), ``instances`` and
        ``declared_size`` (the ``<size>`` of the file, or None).
    """
    root = _read_xml(path)
    size = root.find('size')
    declared = None
    if size is not None and size.find('width') is not None:
        width = int(_number(size, 'width', path, '<size>'))
        height = int(_number(size, 'height', path, '<size>'))
        if width > 0 and height > 0:
            declared = (width, height)
    checked_size = tuple(image_size) if image_size is not None else declared
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
        coords = [
            _number(box, t, path, where) for t in ('xmin', 'ymin', 'xmax', 'ymax')
        ]
        bbox = check_box(coords, checked_size, tolerance, path, where,
                         image_path if image_size is not None else '')
        difficult = obj.find('difficult')
        difficult = difficult is not None and (difficult.text or '').strip() == '1'
        instances.append(
            dict(bbox=bbox, bbox_label=cat2label[name], ignore_flag=int(difficult)))
    width, height = checked_size if checked_size is not None else (None, None)
    return dict(width=width, height=height, instances=instances, declared_size=declared)


def warn_size_mismatches(mismatches: List[str], owner: str, source: str) -> None:
    """One warning for the annotations whose declared image size is wrong."""
    if not mismatches:
        return
    shown = '; '.join(mismatches[:3])
    more = f' (and {len(mismatches) - 3} more)' if len(mismatches) > 3 else ''
    print_log(
        f'{owner}: {len(mismatches)} annotation(s) in {source} declare an image '
        f'size that differs from their image: {shown}{more}. Boxes were checked '
        'against, and the data info uses, the real size read from the image.',
        logger='current',
        level=logging.WARNING)


class RGBTDetDataset(CameraCheckMixin, SeededSamplesMixin, BaseDetDataset):
    """Aligned RGB-thermal pairs with one VOC XML annotation per pair.

    Subclasses say where a sample's files are (:meth:`sample_files`) and how the
    sample names are listed (:meth:`list_stems`). Each data info holds ``img_path``
    (RGB), ``thermal_path``, ``width``, ``height`` and ``instances``, the keys
    :class:`mwam_mm.datasets.LoadRGBTImagePair` and mmdet's transforms use.

    16-bit (radiometric) thermal files are loaded at full depth and scaled as
    :class:`mwam_mm.datasets.LoadRGBTImagePair`'s ``depth_scaling`` says, alike for
    every dataset class. An index from :class:`mwam_mm.compat.ResumableSampler`
    runs its sample's pipeline under the sample's own random stream
    (:class:`mwam_mm.compat.SeededSamplesMixin`), which makes a resumed epoch draw
    the augmentation of the interrupted one.

    Split files are read as UTF-8 with or without a byte-order mark; a sample
    listed twice is an error naming the file and the lines. File suffixes match
    in any case (``010002.JPG`` for ``img_suffix='.jpg'``); data infos hold the
    file names as they are on disk.

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
        box_tolerance (float): Pixels a box may exceed the image (then clipped)
            before it is an error. Defaults to 1. Boxes are checked against the
            real image size, read from the RGB image's header when the dataset
            is built; a ``<size>`` that disagrees is reported in one warning.
        camera_check (str): What to do when a few pairs read at full init (up to
            8, spread over the data list) show a camera of the wrong kind: RGB
            grey in every sampled pair (swapped folders?) or a colour
            (false-colour) thermal image; see :mod:`mwam_mm.datasets.camera_check`
            for the tolerances. ``'warn'`` (default) logs a warning naming the
            files, ``'error'`` raises, ``'off'`` reads nothing.
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
        check_pipeline_carries_missing(self.pipeline, type(self).__name__)

    # hooks for subclasses -------------------------------------------------
    def list_stems(self) -> List[str]:
        """Sample names: the split file's lines, or the RGB folder's images."""
        if self.ann_file:
            return self._read_split_file(self.ann_file)
        return self._list_folder(self.data_prefix.get('img', ''), self.img_suffix)

    def sample_files(self, stem: str) -> Dict[str, str]:
        """``img_path``, ``thermal_path`` and ``ann_path`` of sample ``stem``."""
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''), stem + self.img_suffix),
            thermal_path=osp.join(
                self.data_prefix.get('thermal', ''), stem + self.thermal_suffix),
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
        suffixes = (self.img_suffix, self.thermal_suffix)
        entries = [(number, strip_suffix(text, suffixes))
                   for number, text in read_split_lines(path)]
        if not entries:
            raise ValueError(f'{type(self).__name__}: split file {path} is empty')
        # names that differ but give one sample's files (FLIR: with or without
        # the thermal tag) are one sample
        refuse_duplicates(entries, path, key=lambda s: self.sample_files(s)['img_path'])
        return [stem for _, stem in entries]

    def _list_folder(self, folder: str, suffix: str) -> List[str]:
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{type(self).__name__}: folder {folder!r} not found (data_root '
                f'{self.data_root!r}, data_prefix {self.data_prefix})')
        stems = list_folder_stems(folder, suffix, type(self).__name__)
        if not stems:
            raise ValueError(f'{type(self).__name__}: no *{suffix} files in '
                             f'{folder}')
        return stems

    def _check_image_files(self, stem: str, files: dict, what: str = 'sample') -> None:
        """Both images of sample ``stem`` exist; else name the missing one."""
        for key in ('img_path', 'thermal_path'):
            if not osp.isfile(files[key]):
                partner = 'thermal' if key == 'thermal_path' else 'RGB'
                raise FileNotFoundError(
                    f'{type(self).__name__}: {what} {stem!r}: the {partner} image '
                    f'{files[key]} does not exist')

    def load_data_list(self) -> List[dict]:
        self._check_data_root()
        classes = check_classes(self.metainfo.get('classes', ()), type(self).__name__)
        self.cat2label = {c: i for i, c in enumerate(classes)}
        data_list, mismatches = [], []
        resolve = CaseResolver()
        for stem in self.list_stems():
            files = resolve.files(self.sample_files(stem))
            self._check_image_files(stem, files)
            ann_path = files.pop('ann_path')
            # the real size, from the header: an XML's <size> may be wrong
            real_size = image_size(files['img_path'])
            if osp.isfile(ann_path):
                info = parse_voc_xml(
                    ann_path,
                    self.cat2label,
                    self.ignore_classes,
                    self.box_tolerance,
                    image_size=real_size,
                    image_path=files['img_path'])
                declared = info.pop('declared_size')
                if declared is not None and declared != real_size:
                    mismatches.append(
                        f'{ann_path} says {declared[0]}x{declared[1]}, '
                        f'{files["img_path"]} is {real_size[0]}x{real_size[1]}')
            elif self.require_annotations:
                raise FileNotFoundError(
                    f'{type(self).__name__}: sample {stem!r}: annotation {ann_path} '
                    'does not exist (require_annotations=False accepts '
                    'unannotated samples)')
            else:
                info = dict(width=real_size[0], height=real_size[1], instances=[])
            data_list.append(dict(files, img_id=stem, **info))
        warn_size_mismatches(mismatches,
                             type(self).__name__,
                             self.data_prefix.get('ann', '') or 'the annotations')
        return data_list

    def filter_data(self) -> List[dict]:
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if filter_empty_gt and not any(not i['ignore_flag']
                                           for i in info['instances']):
                continue
            if info['width'] is not None and min(info['width'],
                                                 info['height']) < min_size:
                continue
            kept.append(info)
        return kept
