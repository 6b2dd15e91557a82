import os
import os.path as osp
import re
import shutil

import numpy as np
import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (FLIRAlignedDataset, LLVIPDataset, M3FDDataset,
                              parse_voc_xml)
from tests.conftest import DATA
from tests.helpers.layouts import write_flir, write_m3fd

LLVIP = osp.join(DATA, 'llvip_mini')
M3FD = osp.join(DATA, 'm3fd_mini')


def infos(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def boxes_in_file(path):
    """Independent reading of a VOC file's boxes: plain regular expressions."""
    text = open(path).read()
    boxes = []
    for obj in re.findall(r'<object>(.*?)</object>', text, re.S):
        name = re.search(r'<name>(.*?)</name>', obj).group(1)
        coords = [
            float(re.search(f'<{t}>(.*?)</{t}>', obj).group(1))
            for t in ('xmin', 'ymin', 'xmax', 'ymax')
        ]
        boxes.append((name, coords))
    return boxes


def test_real_llvip_files_parse_with_their_quirks():
    ds = LLVIPDataset(data_root=LLVIP, pipeline=[])
    assert ds.metainfo['classes'] == ('person', )
    assert [d['img_id'] for d in infos(ds)] == ['010001', '010002', '010003']
    for info in infos(ds):
        ann = osp.join(LLVIP, 'Annotations', info['img_id'] + '.xml')
        expected = boxes_in_file(ann)
        assert [i['bbox'] for i in info['instances']] == [b for _, b in expected]
        assert all(i['bbox_label'] == 0 for i in info['instances'])
        assert (info['width'], info['height']) == (1280, 1024)  # <depth>1 ignored
        assert info['thermal_path'].endswith(f'infrared/train/{info["img_id"]}.jpg')
    # 010002 has stray text after </folder>; 010003 has no XML declaration
    assert len(infos(ds)[1]['instances']) == 4
    assert not open(osp.join(LLVIP,
                             'Annotations/010003.xml')).read().startswith('<?xml')


def test_real_m3fd_pair_maps_classes_by_name():
    ds = M3FDDataset(data_root=M3FD, pipeline=[])
    info = infos(ds)[0]
    names = [ds.metainfo['classes'][i['bbox_label']] for i in info['instances']]
    assert sorted(names) == ['Car'] * 7 + ['Lamp']
    assert [i['bbox'] for i in info['instances']] == \
        [b for _, b in boxes_in_file(osp.join(M3FD, 'Annotation/00471.xml'))]
    reordered = M3FDDataset(
        data_root=M3FD,
        pipeline=[],
        metainfo=dict(classes=('Lamp', 'Car', 'People', 'Bus', 'Motorcycle', 'Truck')))
    relabelled = [
        reordered.metainfo['classes'][i['bbox_label']]
        for i in infos(reordered)[0]['instances']
    ]
    assert sorted(relabelled) == sorted(names)


def test_unannotated_test_images(tmp_path):
    prefix = dict(img='visible/test', thermal='infrared/test', ann='Annotations')
    with pytest.raises(FileNotFoundError, match=r'190001\.xml does not exist'):
        LLVIPDataset(data_root=LLVIP, data_prefix=prefix, pipeline=[])
    ds = LLVIPDataset(
        data_root=LLVIP,
        data_prefix=prefix,
        pipeline=[],
        require_annotations=False,
        test_mode=True)
    assert infos(ds)[0]['instances'] == []


def test_flir_voc_and_coco_forms_agree(tmp_path):
    root = write_flir(str(tmp_path / 'flir'))
    voc = FLIRAlignedDataset(data_root=root, ann_file='align_train.txt', pipeline=[])
    coco = FLIRAlignedDataset(
        data_root=root, ann_file='Annotation_train.json', pipeline=[])
    assert len(voc) == 3 and len(coco) == 6
    for v, c in zip(infos(voc), infos(coco)[:3]):
        assert v['img_path'] == c['img_path']
        assert v['thermal_path'] == c['thermal_path']
        assert v['thermal_path'].endswith('_PreviewData.jpeg')
        assert [i['bbox'] for i in v['instances']] == \
            [i['bbox'] for i in c['instances']]
        assert [i['bbox_label'] for i in v['instances']] == \
            [i['bbox_label'] for i in c['instances']]
    # the stray dog is dropped by default, an error when not ignored
    with pytest.raises(ValueError, match=r"class 'dog'.*ignore_classes"):
        FLIRAlignedDataset(
            data_root=root, ann_file='align_train.txt', pipeline=[], ignore_classes=())
    with pytest.raises(ValueError, match=r"categories \['dog'\]"):
        FLIRAlignedDataset(
            data_root=root,
            ann_file='Annotation_train.json',
            pipeline=[],
            ignore_classes=())


def test_generated_m3fd_layout_with_split_files(tmp_path):
    root = write_m3fd(str(tmp_path / 'm3fd'))
    train = M3FDDataset(data_root=root, ann_file='trainval.txt', pipeline=[])
    test = M3FDDataset(data_root=root, ann_file='test.txt', pipeline=[])
    assert [d['img_id'] for d in infos(train)] == ['00000', '00001', '00002']
    assert len(test) == 3


# --------------------------------------------------------------- bad input
@pytest.fixture
def llvip_copy(tmp_path):
    root = tmp_path / 'LLVIP'
    shutil.copytree(LLVIP, root)
    return root


def test_missing_partner_image(llvip_copy):
    os.remove(llvip_copy / 'infrared/train/010002.jpg')
    with pytest.raises(
            FileNotFoundError,
            match=r"sample '010002': the thermal image .*010002\.jpg"):
        LLVIPDataset(data_root=str(llvip_copy), pipeline=[])


def test_malformed_xml(llvip_copy):
    (llvip_copy / 'Annotations/010001.xml').write_text('<annotation><object>')
    with pytest.raises(ValueError, match=r'010001\.xml: malformed XML'):
        LLVIPDataset(data_root=str(llvip_copy), pipeline=[])


def test_box_outside_the_image(llvip_copy):
    path = llvip_copy / 'Annotations/010001.xml'
    path.write_text(path.read_text().replace('<xmax>351</xmax>', '<xmax>1500</xmax>',
                                             1))
    with pytest.raises(
            ValueError,
            match=r'010001\.xml: object 0 \(person\) box '
            r'.*outside the 1280x1024 image'):
        LLVIPDataset(data_root=str(llvip_copy), pipeline=[])


def test_empty_box_and_non_numeric_coordinate(tmp_path):
    path = tmp_path / 'a.xml'
    path.write_text('<annotation><object><name>person</name><bndbox><xmin>5</xmin>'
                    '<ymin>5</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>'
                    '</annotation>')
    with pytest.raises(ValueError, match='empty box'):
        parse_voc_xml(str(path), dict(person=0))
    path.write_text(path.read_text().replace('<xmax>5</xmax>', '<xmax>x</xmax>'))
    with pytest.raises(ValueError, match="<xmax> is 'x', not a number"):
        parse_voc_xml(str(path), dict(person=0))


def test_stray_text_after_the_root_is_tolerated(tmp_path):
    path = tmp_path / 'a.xml'
    path.write_text('<annotation><object><name>person</name><bndbox><xmin>1</xmin>'
                    '<ymin>2</ymin><xmax>5</xmax><ymax>9</ymax></bndbox></object>'
                    '</annotation> trailing editor comment <')
    assert parse_voc_xml(str(path), dict(person=0))['instances'][0]['bbox'] == \
        [1.0, 2.0, 5.0, 9.0]


def test_split_file_problems(tmp_path):
    root = write_m3fd(str(tmp_path / 'm3fd'), num=2)
    open(osp.join(root, 'empty.txt'), 'w').close()
    with pytest.raises(ValueError, match=r'split file .*empty\.txt is empty'):
        M3FDDataset(data_root=root, ann_file='empty.txt', pipeline=[])
    with pytest.raises(FileNotFoundError, match=r'split file .*nope\.txt not found'):
        M3FDDataset(data_root=root, ann_file='nope.txt', pipeline=[])


def test_wrong_data_root_and_string_classes(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_root .*no_such_dir.* is not"):
        LLVIPDataset(data_root=str(tmp_path / 'no_such_dir'), pipeline=[])
    with pytest.raises(TypeError, match=r"got the string 'person'.*\('person',\)"):
        LLVIPDataset(data_root=LLVIP, pipeline=[], metainfo=dict(classes='person'))


def test_unreadable_image_is_named(llvip_copy):
    from mmengine.registry import TRANSFORMS

    # the dataset reads every RGB image's header when it is built...
    (llvip_copy / 'visible/train/010001.jpg').write_bytes(b'not a jpeg at all')
    with pytest.raises(
            ValueError,
            match=r'cannot read image file .*010001\.jpg '
            r'\(17 bytes\): not a readable image'):
        LLVIPDataset(data_root=str(llvip_copy), pipeline=[])
    # ...the loader decodes the thermal partner, not read before
    shutil.copy(
        osp.join(LLVIP, 'visible/train/010001.jpg'),
        llvip_copy / 'visible/train/010001.jpg')
    (llvip_copy / 'infrared/train/010001.jpg').write_bytes(b'not a jpeg at all')
    ds = LLVIPDataset(
        data_root=str(llvip_copy), pipeline=[dict(type='LoadRGBTImagePair')])
    with pytest.raises(ValueError, match=r'cannot decode image file .*010001\.jpg'):
        ds[0]
    assert TRANSFORMS.get('LoadRGBTImagePair') is not None


def test_real_llvip_pair_loads_as_four_channels():
    ds = LLVIPDataset(data_root=LLVIP, pipeline=[dict(type='LoadRGBTImagePair')])
    sample = ds[0]
    assert sample['img'].shape == (1024, 1280, 4)
    assert sample['img'].dtype == np.uint8
