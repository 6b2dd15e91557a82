"""FLIR ADAS aligned (Zhang et al. 2020): the RGB-T pairs everyone evaluates on."""
import json
import math
import os.path as osp
from typing import Dict, List

from mmengine.registry import DATASETS

from .file_lists import TEXT_ENCODING, CaseResolver
from .rgbt_det import RGBTDetDataset, check_box, check_classes, warn_size_mismatches
from .transforms.loading import image_size

THERMAL_KEYS = ('file_name_lwir', 'file_name_ir', 'file_name_thermal')


@DATASETS.register_module()
class FLIRAlignedDataset(RGBTDetDataset):
    """FLIR aligned, in either of its two common forms.

    VOC form (the original release), ``ann_file`` a split list such as
    ``align_train.txt`` whose lines are thermal names::

        align/
          JPEGImages/FLIR_00002_PreviewData.jpeg   (thermal)
          JPEGImages/FLIR_00002_RGB.jpg            (visible)
          Annotations/FLIR_00002_PreviewData.xml
          align_train.txt, align_validation.txt

    COCO form (common redistributions), ``ann_file`` a ``.json`` whose images have
    ``file_name`` (RGB, under ``data_prefix['img']``) and ``file_name_lwir`` or
    ``file_name_ir`` (thermal, under ``data_prefix['thermal']``); categories are
    matched by name.

    Both forms get the same box checks (:func:`mwam_mm.datasets.rgbt_det.check_box`):
    finite coordinates, a non-empty box, and at most ``box_tolerance`` pixels
    outside the real image, whose size is read from the RGB image's header (the
    JSON's ``width``/``height``, like an XML's ``<size>``, can be wrong).

    Classes are matched by name (public configs disagree on their order); the stray
    ``dog`` boxes are dropped by the default ``ignore_classes=('dog',)``.
    """

    METAINFO = dict(
        classes=('person', 'car', 'bicycle'),
        palette=[(220, 20, 60), (0, 0, 142), (119, 11, 32)])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(
                     img='JPEGImages', thermal='JPEGImages', ann='Annotations'),
                 img_suffix: str = '.jpg',
                 thermal_suffix: str = '.jpeg',
                 ignore_classes=('dog', ),
                 thermal_tag: str = '_PreviewData',
                 rgb_tag: str = '_RGB',
                 **kwargs):
        self.thermal_tag = thermal_tag
        self.rgb_tag = rgb_tag
        super().__init__(
            *args,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            thermal_suffix=thermal_suffix,
            ignore_classes=ignore_classes,
            **kwargs)

    def list_stems(self) -> List[str]:
        if not self.ann_file:
            raise ValueError('FLIRAlignedDataset needs ann_file: a split list '
                             '(align_train.txt) or a COCO json')
        return self._read_split_file(self.ann_file)

    def sample_files(self, stem: str) -> Dict[str, str]:
        thermal_stem = stem if stem.endswith(self.thermal_tag) else \
            stem + self.thermal_tag
        rgb_stem = thermal_stem[:-len(self.thermal_tag)] + self.rgb_tag
        return dict(
            img_path=osp.join(
                self.data_prefix.get('img', ''), rgb_stem + self.img_suffix),
            thermal_path=osp.join(
                self.data_prefix.get('thermal', ''),
                thermal_stem + self.thermal_suffix),
            ann_path=osp.join(self.data_prefix.get('ann', ''), thermal_stem + '.xml'))

    def load_data_list(self) -> List[dict]:
        if self.ann_file and self.ann_file.endswith('.json'):
            return self._load_coco()
        return super().load_data_list()

    def _load_coco(self) -> List[dict]:
        self._check_data_root()
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(f'FLIRAlignedDataset: annotation file {path} '
                                    'not found')
        try:
            with open(path, encoding=TEXT_ENCODING) as f:
                coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: malformed JSON ({e})') from None
        for key in ('images', 'annotations', 'categories'):
            if key not in coco:
                raise ValueError(f'{path}: COCO annotation without {key!r}')
        classes = check_classes(self.metainfo.get('classes', ()), type(self).__name__)
        cat2label = {c: i for i, c in enumerate(classes)}
        cat_names = {c['id']: c['name'] for c in coco['categories']}
        unknown = sorted(
            set(cat_names.values()) - set(cat2label) - set(self.ignore_classes))
        if unknown:
            raise ValueError(
                f'{path}: categories {unknown} are not among the dataset classes '
                f'{classes}; map them or list them in ignore_classes')
        images, first_entry = {}, {}
        for index, img in enumerate(coco['images']):
            if not isinstance(img, dict) or 'id' not in img or 'file_name' not in img:
                raise ValueError(f'{path}: an image entry without id or file_name: '
                                 f'{img!r}')
            # a repeated image would count twice in training and in the metric
            for key in (('id', img['id']), ('file_name', img['file_name'])):
                if key in first_entry:
                    raise ValueError(
                        f'{path}: images[{index}] has the {key[0]} {key[1]!r} of '
                        f'images[{first_entry[key]}]; an image listed twice would '
                        'count more than once in training and in the evaluation')
                first_entry[key] = index
            images[img['id']] = img
        resolve = CaseResolver()
        per_image: Dict[int, list] = {i: [] for i in images}
        checked: Dict[int, dict] = {}  # image id -> files and real size
        mismatches = []
        for ann in coco['annotations']:
            name = cat_names.get(ann['category_id'])
            if name is None:
                raise ValueError(f'{path}: annotation {ann.get("id")} has unknown '
                                 f'category_id {ann["category_id"]}')
            if name in self.ignore_classes:
                continue
            if ann['image_id'] not in per_image:
                raise ValueError(f'{path}: annotation {ann.get("id")} refers to '
                                 f'missing image_id {ann["image_id"]}')
            img = images[ann['image_id']]
            files = checked.get(img['id'])
            if files is None:
                files = checked[img['id']] = self._image_files(
                    img, path, mismatches, resolve)
            where = (f'annotation {ann.get("id")} ({name}, image {img["id"]} '
                     f'{img["file_name"]})')
            box = ann.get('bbox')
            if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool)
                    for v in box):
                raise ValueError(f'{path}: {where} has bbox {box!r}; expected '
                                 '[x, y, width, height], four numbers')
            x, y, w, h = (float(v) for v in box)
            if not all(math.isfinite(v) for v in (x, y, w, h)):
                raise ValueError(f'{path}: {where} has a non-finite coordinate in '
                                 f'its bbox {box}')
            if w <= 0 or h <= 0:
                raise ValueError(f'{path}: {where} has an empty box {box}')
            bbox = check_box([x, y, x + w, y + h],
                             files['size'],
                             self.box_tolerance,
                             path,
                             where,
                             image=files['img_path'],
                             shown=f'{box} (x, y, w, h)')
            per_image[img['id']].append(
                dict(
                    bbox=bbox,
                    bbox_label=cat2label[name],
                    ignore_flag=int(ann.get('iscrowd', 0))))
        data_list = []
        for img in coco['images']:
            files = checked.get(img['id']) or self._image_files(
                img, path, mismatches, resolve)
            width, height = files['size']
            data_list.append(
                dict(
                    img_path=files['img_path'],
                    thermal_path=files['thermal_path'],
                    img_id=img['id'],
                    width=width,
                    height=height,
                    instances=per_image[img['id']]))
        warn_size_mismatches(mismatches, type(self).__name__, path)
        return data_list

    def _image_files(self, img: dict, path: str, mismatches: List[str],
                     resolve: CaseResolver) -> dict:
        """An image entry's files, checked to exist, and the real RGB size."""
        thermal_key = next((k for k in THERMAL_KEYS if k in img), None)
        if thermal_key is None:
            raise ValueError(
                f'{path}: image {img.get("id")} ({img.get("file_name")}) has no '
                f'thermal file name; expected one of {THERMAL_KEYS}')
        files = resolve.files(
            dict(
                img_path=osp.join(self.data_prefix.get('img', ''), img['file_name']),
                thermal_path=osp.join(
                    self.data_prefix.get('thermal', ''), img[thermal_key])))
        for value in files.values():
            if not osp.isfile(value):
                raise FileNotFoundError(
                    f'FLIRAlignedDataset: image {img.get("id")}: {value} does '
                    f'not exist (from {path})')
        files['size'] = image_size(files['img_path'])
        declared = (img.get('width'), img.get('height'))
        if None not in declared and tuple(declared) != files['size']:
            mismatches.append(
                f'image {img["id"]} says {declared[0]}x{declared[1]}, '
                f'{files["img_path"]} is {files["size"][0]}x{files["size"][1]}')
        return files
