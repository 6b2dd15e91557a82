"""The same box checks on every annotation path (VOC XML, COCO JSON), against the
real image size read from the image file."""
import json
import os.path as osp
import shutil

import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import FLIRAlignedDataset, LLVIPDataset, M3FDDataset
from tests.conftest import DATA
from tests.helpers.layouts import write_flir, write_m3fd

LLVIP = osp.join(DATA, 'llvip_mini')


def edit_json(path, change):
    coco = json.load(open(path))
    change(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)  # writes NaN for float('nan'), as Python's json reads it


def first_ann_of_image(coco, image_id):
    return next(a for a in coco['annotations'] if a['image_id'] == image_id)


@pytest.mark.parametrize('text', ['nan', 'NaN', 'inf', '-inf'])
def test_non_finite_coordinate_in_voc_xml(tmp_path, text):
    root = tmp_path / 'LLVIP'
    shutil.copytree(LLVIP, root)
    path = root / 'Annotations/010001.xml'
    path.write_text(path.read_text().replace('<xmax>351</xmax>', f'<xmax>{text}</xmax>',
                                             1))
    with pytest.raises(
            ValueError,
            match=rf"010001\.xml: object 0 \(person\) "
            rf"<xmax> is '{text}', not a finite number"):
        LLVIPDataset(data_root=str(root), pipeline=[])


def test_non_finite_coordinate_in_coco_json(tmp_path):
    root = write_flir(str(tmp_path / 'flir'))
    ann = osp.join(root, 'Annotation_train.json')
    edit_json(
        ann, lambda c: c['annotations'][0].update(bbox=[float('nan')] + c['annotations']
                                                  [0]['bbox'][1:]))
    with pytest.raises(
            ValueError,
            match=r'Annotation_train\.json: annotation 0 '
            r'\(\w+, image 0 FLIR_00001_RGB\.jpg\) has a non-finite '
            r'coordinate in its bbox \[nan, '):
        FLIRAlignedDataset(
            data_root=root, ann_file='Annotation_train.json', pipeline=[])


def test_coco_box_outside_the_image_is_refused_as_in_voc(tmp_path):
    """The 96x80 image; a box reaching x=150 was accepted (and later clipped)."""
    root = write_flir(str(tmp_path / 'flir'))
    ann = osp.join(root, 'Annotation_train.json')

    def widen(coco):
        first_ann_of_image(coco, 1)['bbox'][2] = 150.0

    edit_json(ann, widen)
    with pytest.raises(
            ValueError,
            match=r'Annotation_train\.json: annotation \d+ '
            r'\(\w+, image 1 FLIR_00002_RGB\.jpg\) box \[.*150\.0.*\] '
            r'\(x, y, w, h\) lies outside the 96x80 image '
            r'.*FLIR_00002_RGB\.jpg'):
        FLIRAlignedDataset(
            data_root=root, ann_file='Annotation_train.json', pipeline=[])
    # the VOC form of the same box: the same refusal
    xml = osp.join(root, 'Annotations/FLIR_00002_PreviewData.xml')
    text = open(xml).read()
    start = text.index('<xmax>') + len('<xmax>')
    with open(xml, 'w') as f:
        f.write(text[:start] + '400' + text[text.index('</xmax>'):])
    (tmp_path / 'flir' / 'one.txt').write_text('FLIR_00002_PreviewData\n')
    with pytest.raises(
            ValueError,
            match=r'FLIR_00002_PreviewData\.xml: object 0 '
            r'.* lies outside the 96x80 image .*FLIR_00002_RGB\.jpg'):
        FLIRAlignedDataset(data_root=root, ann_file='one.txt', pipeline=[])


def test_declared_size_is_checked_against_the_real_image(tmp_path):
    """An XML declaring 960x800 for a 96x80 image: a box at x=500 lies inside
    what it declares, far outside the image."""
    root = write_m3fd(str(tmp_path / 'm3fd'), num=2)
    path = osp.join(root, 'Annotation/00000.xml')
    text = open(path).read().replace('<width>96</width>', '<width>960</width>')
    text = text.replace('<height>80</height>', '<height>800</height>')
    start = text.index('<xmax>') + len('<xmax>')
    text = text[:start] + '500' + text[text.index('</xmax>'):]
    open(path, 'w').write(text)
    with pytest.raises(
            ValueError,
            match=r'00000\.xml: object 0 \(\w+\) box '
            r'\[.*500\.0.*\] lies outside the 96x80 image '
            r'.*Vis/00000\.png'):
        M3FDDataset(data_root=root, pipeline=[])


def test_wrong_declared_size_with_boxes_inside_uses_the_real_size(tmp_path):
    root = write_m3fd(str(tmp_path / 'm3fd'), num=2)
    path = osp.join(root, 'Annotation/00001.xml')
    text = open(path).read().replace('<width>96</width>', '<width>1024</width>')
    open(path, 'w').write(text.replace('<height>80</height>', '<height>768</height>'))
    ds = M3FDDataset(data_root=root, pipeline=[])
    info = ds.get_data_info(1)
    assert (info['width'], info['height']) == (96, 80)


def test_tolerance_clips_alike_on_both_paths(tmp_path):
    root = write_flir(str(tmp_path / 'flir'), num=2, stray_dog=False)
    ann = osp.join(root, 'Annotation_train.json')
    coco = json.load(open(ann))
    first = first_ann_of_image(coco, 0)
    x, y, w, h = first['bbox']
    first['bbox'] = [-0.5, y, x + w + 0.5, h]  # half a pixel left of the image
    json.dump(coco, open(ann, 'w'))
    xml = osp.join(root, 'Annotations/FLIR_00001_PreviewData.xml')
    text = open(xml).read()
    start = text.index('<xmin>') + len('<xmin>')
    open(xml, 'w').write(text[:start] + '-0.5' + text[text.index('</xmin>'):])
    voc = FLIRAlignedDataset(data_root=root, ann_file='align_train.txt', pipeline=[])
    coco_ds = FLIRAlignedDataset(
        data_root=root, ann_file='Annotation_train.json', pipeline=[])
    voc_box = voc.get_data_info(0)['instances'][0]['bbox']
    coco_box = coco_ds.get_data_info(0)['instances'][0]['bbox']
    assert voc_box[0] == coco_box[0] == 0.0
    assert voc_box == coco_box


def test_a_box_wholly_outside_the_image_is_refused_even_within_tolerance():
    from mwam_mm.datasets.rgbt_det import check_box
    with pytest.raises(
            ValueError,
            match=r'a.xml: object 0 box \[102, 5, 104, 9\] has '
            'no area inside the 100x50 image'):
        check_box([102, 5, 104, 9], (100, 50), 8, 'a.xml', 'object 0')
    assert check_box([98, 5, 104, 9], (100, 50), 8, 'a.xml', 'object 0') == \
        [98.0, 5.0, 100.0, 9.0]
