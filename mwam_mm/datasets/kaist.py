"""KAIST multispectral pedestrians: the released layout and its bbGt text annotations.

Reference: S. Hwang, J. Park, N. Kim, Y. Choi, I. S. Kweon, *Multispectral
Pedestrian Detection: Benchmark Dataset and Baseline*, CVPR 2015. The annotation
format is the one of P. Dollar's toolbox (``bbGt``, version 3), as used for the
Caltech pedestrians (Dollar et al., *Pedestrian Detection: An Evaluation of the
State of the Art*, PAMI 2012).
"""
import math
import os.path as osp
import re
import string
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.registry import DATASETS

from .file_lists import (TEXT_ENCODING, CaseResolver, read_split_lines,
                         refuse_duplicates, strip_suffix)
from .rgbt_det import RGBTDetDataset, check_box, check_classes
from .transforms.loading import image_size

#: Labels the KAIST evaluation turns into ignore regions ('person' is the class).
KAIST_IGNORE_LABELS = ('people', 'person?', 'cyclist')
#: Occlusion levels of the released files: 0 none, 1 partial, 2 heavy.
OCCLUSION_LEVELS = ('none', 'partial', 'heavy')
#: Sets captured by day and by night (train: 00-05, test: 06-11).
DAY_SETS = ('set00', 'set01', 'set02', 'set06', 'set07', 'set08')
NIGHT_SETS = ('set03', 'set04', 'set05', 'set09', 'set10', 'set11')
#: Visible-fraction threshold between partial and heavy occlusion for files that
#: give a visible box instead of a level (the Caltech convention, PAMI 2012).
PARTIAL_VISIBILITY = 0.65

# bbGt version -> number of fields of a line (label included); version 3 is
# ``label x y w h occ xv yv wv hv ign ang``, 1 and 0 lack ``ign`` and ``ang``.
_FIELDS_BY_VERSION = {0: 10, 1: 10, 2: 11, 3: 12}
_FIELD_NAMES = ('label', 'x', 'y', 'w', 'h', 'occ', 'xv', 'yv', 'wv', 'hv', 'ign',
                'ang')
_HEADER = re.compile(r'^%\s*bbGt\s+version\s*=\s*(\S+)\s*$')
_FRAME = re.compile(r'^(set\d{2})[/_](V\d{3})[/_](I\d{5})$')
_LAYOUTS = {
    'nested': '{set}/{video}/{frame}.txt',
    'flat': '{set}_{video}_{frame}.txt',
}


def parse_frame_id(text: str) -> Optional[Tuple[str, str, str]]:
    """``('set06', 'V000', 'I00019')`` from ``set06/V000/I00019`` (or ``_``-joined).

    Returns None when ``text`` is not a KAIST frame name.
    """
    match = _FRAME.match(text.strip())
    return match.groups() if match else None


def frame_condition(img_id: str) -> Optional[str]:
    """``'day'`` or ``'night'`` for a KAIST frame name by its set; None otherwise."""
    parts = parse_frame_id(str(img_id))
    if parts is None:
        return None
    if parts[0] in DAY_SETS:
        return 'day'
    if parts[0] in NIGHT_SETS:
        return 'night'
    return None


def _occlusion_level(occ: float, visible: Sequence[float], box: Sequence[float],
                     occlusion: str, path: str, where: str) -> int:
    if occlusion == 'level':
        if occ not in (0, 1, 2):
            raise ValueError(
                f'{path}: {where}: occlusion {occ:g} is not 0 (none), 1 (partial) '
                "or 2 (heavy); for files that flag occlusion with 0/1 and give the "
                "visible box, use occlusion='visible_box'")
        return int(occ)
    # 'visible_box' (Caltech): occ is a flag, the visible box gives the fraction
    if occ not in (0, 1):
        raise ValueError(f'{path}: {where}: occlusion flag {occ:g} is not 0 or 1 '
                         "(occlusion='visible_box')")
    if occ == 0 or all(v == 0 for v in visible):
        return 0
    if list(visible) == list(box):  # bbGt: the object may be barely visible
        return 2
    fraction = (visible[2] * visible[3]) / max(box[2] * box[3], 1e-12)
    return 1 if fraction >= PARTIAL_VISIBILITY else 2


def parse_kaist_annotation(path: str, occlusion: str = 'level') -> List[dict]:
    """Read one KAIST annotation file (bbGt text format).

    The file starts with ``% bbGt version=3``, then one object per line::

        label x y w h occ xv yv wv hv ign ang

    ``x y w h`` is the box (left, top, width, height, in pixels as written),
    ``occ`` the occlusion, ``xv yv wv hv`` the visible box (0 0 0 0 when not
    given), ``ign`` the file's own ignore flag and ``ang`` an angle (unused by the
    evaluation). Versions 0-2 have fewer trailing fields (``ign`` from version 2);
    a file without a header line is read by its field count. Blank lines and
    ``%`` comment lines after the header are skipped.

    Occlusion conventions (``occlusion``):

    - ``'level'`` (default): ``occ`` is 0 (none), 1 (partial) or 2 (heavy), as the
      original KAIST release writes it (the sanitized and paired variants keep
      the field). Another value is an error naming the file and line, so that a
      variant with another convention cannot pass unnoticed.
    - ``'visible_box'``: Caltech's convention, ``occ`` a 0/1 flag with the visible
      box: level 0 when unflagged or the visible box is 0 0 0 0, 1 when the visible
      fraction is at least 0.65, else 2 (a visible box equal to the box, bbGt's
      "barely visible", is 2).

    Args:
        path (str): The annotation file.
        occlusion (str): ``'level'`` or ``'visible_box'``.

    Returns:
        list[dict]: One dict per object: ``label``, ``bbox`` ``[x, y, w, h]``,
        ``occlusion`` (0, 1, 2), ``ignore`` (0/1, the file's flag; 0 for
        versions without it) and ``line`` (1-based line number).

    Raises:
        ValueError: A header that is not ``% bbGt version=N`` (N in 0-3), a line
            with the wrong number of fields, a non-numeric or non-finite value, an
            occlusion or ignore value out of range. The message names the file and
            the line.
    """
    if occlusion not in ('level', 'visible_box'):
        raise ValueError(f"occlusion must be 'level' or 'visible_box', got "
                         f'{occlusion!r}')
    try:
        with open(path, encoding=TEXT_ENCODING) as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not a text annotation file ({e})') from None
    version, objects = None, []
    seen_content = False
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith('%'):
            if not seen_content:  # the first line that is not blank
                match = _HEADER.match(line)
                if match is None:
                    raise ValueError(
                        f'{path}: line {number}: {raw!r} is not a bbGt header '
                        "('% bbGt version=3')")
                try:
                    version = int(match.group(1))
                except ValueError:
                    version = -1
                if version not in _FIELDS_BY_VERSION:
                    raise ValueError(f'{path}: line {number}: unknown bbGt version '
                                     f'{match.group(1)!r} (known: 0, 1, 2, 3)')
            seen_content = True
            continue  # a comment after the header
        seen_content = True
        parts = line.split()
        if version is not None:
            expected = (_FIELDS_BY_VERSION[version], )
        else:  # bbGt would read version 0; accept what versions 0-3 write
            expected = (10, 11, 12)
        if len(parts) not in expected:
            want = ' or '.join(str(n) for n in expected)
            fields = ' '.join(_FIELD_NAMES[:max(expected)])
            version_text = f'bbGt version {version}' if version is not None else \
                'a file without a header'
            raise ValueError(
                f'{path}: line {number}: expected {want} fields ({fields}) for '
                f'{version_text}, got {len(parts)}: {raw!r}')
        label = parts[0]
        where = f'line {number} ({label})'
        values = []
        for name, text in zip(_FIELD_NAMES[1:], parts[1:]):
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f'{path}: {where}: {name} is {text!r}, not a '
                                 'number') from None
            if not math.isfinite(value):
                raise ValueError(f'{path}: {where}: {name} is {text!r}, not a '
                                 'finite number')
            values.append(value)
        box, occ, visible = values[0:4], values[4], values[5:9]
        ignore = values[9] if len(values) > 9 else 0.0
        if ignore not in (0, 1):
            raise ValueError(f'{path}: {where}: ign is {ignore:g}, not 0 or 1')
        objects.append(
            dict(
                label=label,
                bbox=box,
                occlusion=_occlusion_level(occ, visible, box, occlusion, path, where),
                ignore=int(ignore),
                line=number))
    return objects


def _layout_template(ann_layout: str) -> str:
    template = _LAYOUTS.get(ann_layout, ann_layout)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as e:
        raise ValueError(f'KAISTDataset: ann_layout {ann_layout!r} is not a valid '
                         f'template ({e})') from None
    if fields != {'set', 'video', 'frame'}:  # all three: one file per frame
        raise ValueError(
            f"KAISTDataset: ann_layout must be 'nested', 'flat' or a template "
            "using all of {set}, {video} and {frame} (e.g. "
            f"'{{set}}/{{video}}/visible/{{frame}}.txt'), got {ann_layout!r}")
    return template


@DATASETS.register_module()
class KAISTDataset(RGBTDetDataset):
    """KAIST multispectral pedestrians in their released layout::

        kaist-cvpr15/
          images/set06/V000/visible/I00019.jpg    (RGB, 640x512)
          images/set06/V000/lwir/I00019.jpg       (thermal)
          annotations/set06/V000/I00019.txt       (bbGt text, original layout)
          imageSets/test-all-20.txt               (lines like set06/V000/I00019)

    ``ann_file`` is the image list (required; the usual test list is the 2,252
    frames of ``test-all-20.txt``, every 20th frame of sets 06-11). Annotation
    folders (``data_prefix['ann']``) come in three layouts (``ann_layout``):

    - ``'nested'``: ``setXX/VYYY/I00000.txt``, the original release;
    - ``'flat'``: one folder of ``setXX_VYYY_I00000.txt``, as the sanitized
      training annotations (Li et al., BMVC 2018) and the improved test
      annotations (Liu et al., BMVC 2016) are commonly distributed;
    - a template with ``{set}``, ``{video}``, ``{frame}``, e.g.
      ``'{set}/{video}/visible/{frame}.txt'`` for the paired annotations (Zhang
      et al., ICCV 2019), which annotate each modality separately.

    Files are read by :func:`parse_kaist_annotation`. Labels: a label among the
    classes (``person`` by default) is an object of that class, with the file's
    ``ign`` flag as its ``ignore_flag``; a label in ``ignore_labels`` (``people``,
    ``person?``, ``cyclist``) is kept as an ignore region (``ignore_flag=1``,
    label 0), as the KAIST evaluation treats it; a label in ``ignore_classes`` is
    dropped; any other label is an error naming the file and line. Boxes are
    checked against the real image size (:func:`check_box`); a box overhanging the
    image by up to ``box_tolerance`` pixels is clipped, one clipped to nothing is
    left out of the training instances. Training instances are not filtered by
    height or occlusion.

    Each data info also carries ``kaist_objects``: the frame's objects as written
    (label, ``[x, y, w, h]`` unclipped, occlusion level, ``ign``), which
    :class:`mwam_mm.evaluation.KAISTMissRate` needs for the height, occlusion and
    border filters of the evaluation protocol; add ``'kaist_objects'`` to the test
    pipeline's ``PackDetInputs`` ``meta_keys`` (``configs/_base_/datasets/
    kaist.py`` does).

    Args:
        data_prefix (dict): ``img``: the images folder (holding ``setXX/VYYY/``);
            ``thermal``: the same for thermal (default: ``img``); ``ann``: the
            annotation folder.
        ann_layout (str): ``'nested'``, ``'flat'`` or a template (above).
        rgb_folder (str): Modality folder of RGB images inside ``VYYY/``.
        thermal_folder (str): Modality folder of thermal images.
        ignore_labels (Sequence[str]): Labels kept as ignore regions.
        occlusion (str): ``'level'`` (0/1/2) or ``'visible_box'``; see
            :func:`parse_kaist_annotation`.
        box_tolerance (float): Pixels a box may extend past the image before it
            is an error. Defaults to 64, because boxes of people entering or
            leaving the frame may extend past its border (the evaluation makes
            any box outside its bounds an ignore region anyway).
        **kwargs: Arguments of :class:`RGBTDetDataset` (``ann_file``,
            ``data_root``, ``ignore_classes``, ``require_annotations``, ...).
    """

    METAINFO = dict(classes=('person', ), palette=[(220, 20, 60)])

    def __init__(self,
                 *args,
                 data_prefix: dict = dict(img='images', ann='annotations'),
                 ann_layout: str = 'nested',
                 rgb_folder: str = 'visible',
                 thermal_folder: str = 'lwir',
                 ignore_labels: Sequence[str] = KAIST_IGNORE_LABELS,
                 occlusion: str = 'level',
                 box_tolerance: float = 64.0,
                 **kwargs):
        self.ann_template = _layout_template(ann_layout)
        if occlusion not in ('level', 'visible_box'):
            raise ValueError("KAISTDataset: occlusion must be 'level' or "
                             f"'visible_box', got {occlusion!r}")
        if isinstance(ignore_labels, str):
            raise TypeError('KAISTDataset: ignore_labels must be a tuple of labels, '
                            f'got the string {ignore_labels!r}')
        self.rgb_folder = rgb_folder
        self.thermal_folder = thermal_folder
        self.ignore_labels = tuple(ignore_labels)
        self.occlusion = occlusion
        super().__init__(
            *args, data_prefix=data_prefix, box_tolerance=box_tolerance, **kwargs)

    def list_stems(self) -> List[str]:
        """Frame names (``set06/V000/I00019``) of the image list, in its order."""
        name = type(self).__name__
        if not self.ann_file:
            raise ValueError(
                f'{name} needs ann_file: an image list such as '
                'imageSets/test-all-20.txt, one frame per line (set06/V000/I00019)')
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{name}: image list {self.ann_file} not found')
        entries = []
        for number, text in read_split_lines(self.ann_file):
            parts = parse_frame_id(
                strip_suffix(text, (self.img_suffix, '.jpg', '.png')))
            if parts is None:
                raise ValueError(
                    f'{self.ann_file}: line {number}: {text!r} is not a KAIST '
                    'frame name like set06/V000/I00019')
            entries.append((number, '/'.join(parts)))
        if not entries:
            raise ValueError(f'{name}: image list {self.ann_file} is empty')
        refuse_duplicates(entries, self.ann_file, what='frame')
        return [stem for _, stem in entries]

    def sample_files(self, stem: str) -> Dict[str, str]:
        set_id, video, frame = stem.split('/')
        img_root = self.data_prefix.get('img', '')
        thermal_root = self.data_prefix.get('thermal', '') or img_root
        ann = self.ann_template.format(set=set_id, video=video, frame=frame)
        return dict(
            img_path=osp.join(img_root, set_id, video, self.rgb_folder,
                              frame + self.img_suffix),
            thermal_path=osp.join(thermal_root, set_id, video, self.thermal_folder,
                                  frame + self.thermal_suffix),
            ann_path=osp.join(self.data_prefix.get('ann', ''), ann))

    def load_data_list(self) -> List[dict]:
        name = type(self).__name__
        self._check_data_root()
        classes = check_classes(self.metainfo.get('classes', ()), name)
        self.cat2label = {c: i for i, c in enumerate(classes)}
        both = set(self.ignore_labels) & set(classes)
        if both:
            raise ValueError(f'{name}: {sorted(both)} are both classes and '
                             'ignore_labels')
        data_list = []
        resolve = CaseResolver()
        for stem in self.list_stems():
            files = resolve.files(self.sample_files(stem))
            self._check_image_files(stem, files, what='frame')
            ann_path = files.pop('ann_path')
            real_size = image_size(files['img_path'])
            if osp.isfile(ann_path):
                objects = parse_kaist_annotation(ann_path, self.occlusion)
            elif self.require_annotations:
                raise FileNotFoundError(
                    f'{name}: frame {stem!r}: annotation {ann_path} does not exist '
                    f'(ann_layout {self.ann_template!r}; require_annotations=False '
                    'accepts unannotated frames)')
            else:
                objects = []
            instances, kept = self._instances(objects, ann_path, real_size,
                                              files['img_path'])
            data_list.append(
                dict(
                    files,
                    img_id=stem,
                    width=real_size[0],
                    height=real_size[1],
                    instances=instances,
                    kaist_objects=kept))
        return data_list

    def _instances(self, objects: List[dict], ann_path: str, real_size: Tuple[int, int],
                   img_path: str) -> Tuple[list, list]:
        """Training instances (clipped) and the objects kept for the metric."""
        classes = tuple(self.cat2label)
        instances, kept = [], []
        for obj in objects:
            label, where = obj['label'], f'line {obj["line"]} ({obj["label"]})'
            if label in self.ignore_classes:
                continue  # dropped from training and evaluation alike
            if label in self.cat2label:
                bbox_label, ignore = self.cat2label[label], obj['ignore']
            elif label in self.ignore_labels:
                bbox_label, ignore = 0, 1
            else:
                raise ValueError(
                    f'{ann_path}: {where}: label {label!r} is neither a class '
                    f'{classes} nor an ignore label {self.ignore_labels}; add it to '
                    'ignore_labels (kept as an ignore region) or ignore_classes '
                    '(dropped)')
            x, y, w, h = obj['bbox']
            box = check_box([x, y, x + w, y + h],
                            real_size,
                            self.box_tolerance,
                            ann_path,
                            where,
                            img_path,
                            shown=obj['bbox'],
                            allow_clipped_away=True)
            kept.append(
                dict(
                    label=label,
                    bbox=list(obj['bbox']),
                    occlusion=obj['occlusion'],
                    ignore=obj['ignore']))
            if box[2] > box[0] and box[3] > box[1]:  # not clipped to nothing
                instances.append(
                    dict(bbox=box, bbox_label=bbox_label, ignore_flag=int(ignore)))
        return instances, kept
