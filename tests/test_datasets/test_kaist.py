"""KAISTDataset and the bbGt text parser on files in KAIST's released format."""
import os
import os.path as osp
import re
import shutil

import pytest
from mmcv.transforms import Compose
from mmengine.registry import DATASETS

import mwam_mm  # noqa: F401
from mwam_mm.datasets import KAISTDataset, parse_kaist_annotation
from mwam_mm.datasets.kaist import frame_condition, parse_frame_id
from tests.conftest import DATA

KAIST = osp.join(DATA, 'kaist_mini')
FRAMES = [
    'set06/V000/I00019', 'set06/V000/I00039', 'set09/V000/I00019', 'set09/V000/I00039'
]


def dataset(root=KAIST, **kwargs):
    kwargs.setdefault('ann_file', 'imageSets/test-mini.txt')
    kwargs.setdefault('test_mode', True)
    return KAISTDataset(data_root=root, pipeline=kwargs.pop('pipeline', []), **kwargs)


def infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def lines_in_file(path):
    """Independent reading: every line after the header, split on spaces."""
    rows = []
    for line in open(path).read().splitlines()[1:]:
        label, *numbers = line.split()
        rows.append((label, [float(v) for v in numbers]))
    return rows


@pytest.fixture
def copy(tmp_path):
    """A writable copy of kaist_mini."""
    root = str(tmp_path / 'kaist')
    shutil.copytree(KAIST, root)
    return root


def write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def test_released_layout_gives_paths_boxes_and_ignore_flags():
    ds = dataset()
    assert ds.metainfo['classes'] == ('person', )
    got = infos(ds)
    assert [d['img_id'] for d in got] == FRAMES  # the list's order
    for info in got:
        set_id, video, frame = info['img_id'].split('/')
        assert info['img_path'] == osp.join(KAIST, 'images', set_id, video, 'visible',
                                            frame + '.jpg')
        assert info['thermal_path'] == osp.join(KAIST, 'images', set_id, video, 'lwir',
                                                frame + '.jpg')
        assert (info['width'], info['height']) == (640, 512)
        written = lines_in_file(
            osp.join(KAIST, 'annotations', set_id, video, frame + '.txt'))
        assert [(o['label'], o['bbox'], o['occlusion'], o['ignore'])
                for o in info['kaist_objects']
                ] == [(label, v[0:4], int(v[4]), int(v[9])) for label, v in written]

    def boxes(info):
        return [(i['bbox'], i['bbox_label'], i['ignore_flag'])
                for i in info['instances']]

    assert boxes(got[0]) == [([100, 100, 141, 200], 0, 0), ([300, 100, 341, 200], 0, 0),
                             ([400, 200, 500, 300], 0, 1)]  # people: ignore region
    # cyclist and person? are ignore regions; the box past the border is clipped
    assert boxes(got[1]) == [([200, 150, 230, 220], 0, 0), ([450, 180, 490, 270], 0, 1),
                             ([50, 220, 70, 270], 0, 1), ([630, 200, 640, 260], 0, 0)]
    assert [i['ignore_flag'] for i in got[2]['instances']] == [0, 0, 0, 1]  # file's ign
    assert [o['occlusion'] for o in got[2]['kaist_objects']] == [1, 2, 0, 0]
    assert got[3]['instances'] == [] and got[3]['kaist_objects'] == []


def test_flat_and_template_layouts_read_the_same(copy):
    nested = infos(dataset())
    flat = infos(
        dataset(
            data_prefix=dict(img='images', ann='annotations-sanitized'),
            ann_layout='flat'))
    # the paired variant: one annotation folder per modality
    for stem in FRAMES:
        set_id, video, frame = stem.split('/')
        write(
            osp.join(copy, 'annotations-paired', set_id, video, 'visible',
                     frame + '.txt'),
            open(osp.join(KAIST, 'annotations', set_id, video, frame + '.txt')).read())
    paired = infos(
        dataset(
            copy,
            data_prefix=dict(img='images', ann='annotations-paired'),
            ann_layout='{set}/{video}/visible/{frame}.txt'))
    for a, b, c in zip(nested, flat, paired):
        assert a['instances'] == b['instances'] == c['instances']
        assert a['kaist_objects'] == b['kaist_objects'] == c['kaist_objects']


def test_registered_and_builds_from_a_config_dict():
    ds = DATASETS.build(
        dict(
            type='KAISTDataset',
            data_root=KAIST,
            ann_file='imageSets/test-mini.txt',
            test_mode=True,
            pipeline=[]))
    assert isinstance(ds, KAISTDataset) and len(ds) == 4


def test_training_filter_drops_frames_without_pedestrians():
    ds = dataset(test_mode=False, filter_cfg=dict(filter_empty_gt=True))
    assert [d['img_id'] for d in infos(ds)] == FRAMES[:3]


def test_pipeline_carries_the_objects_for_the_metric(mmdet_scope):
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor',
                       'kaist_objects'))
    ]
    ds = dataset(pipeline=pipeline)
    packed = ds[1]
    sample = packed['data_samples']
    assert tuple(packed['inputs'].shape) == (4, 512, 640)  # RGB + thermal channels
    assert len(sample.gt_instances) == 2 and len(sample.ignored_instances) == 2
    assert sample.kaist_objects == ds.get_data_info(1)['kaist_objects']
    Compose(pipeline)  # the same steps build alone


def test_frame_names_and_conditions():
    assert parse_frame_id('set06/V000/I00019') == ('set06', 'V000', 'I00019')
    assert parse_frame_id('set06_V000_I00019') == ('set06', 'V000', 'I00019')
    assert parse_frame_id('images/set06/V000/I00019') is None
    assert [
        frame_condition(f)
        for f in ('set00/V000/I00001', 'set05/V000/I00001', 'set08/V002/I00019',
                  'set11/V001/I00019', 'set12/V000/I00019', '010001')
    ] == ['day', 'night', 'day', 'night', None, None]


# --- the parser -----------------------------------------------------------


def test_parser_versions_comments_and_line_endings(tmp_path):
    path = str(tmp_path / 'a.txt')
    write(
        path, '% bbGt version=3\r\n'
        'person 1 2 30 60 1 0 0 0 0 0 0\r\n'
        '\r\n'
        '% a comment\r\n'
        'people 5 6 7 8 0 0 0 0 0 1 90\r\n')
    objects = parse_kaist_annotation(path)
    assert [(o['label'], o['bbox'], o['occlusion'], o['ignore'], o['line'])
            for o in objects] == [('person', [1, 2, 30, 60], 1, 0, 2),
                                  ('people', [5, 6, 7, 8], 0, 1, 5)]
    write(path, '% bbGt version=2\nperson 1 2 3 4 0 0 0 0 0 1\n')  # no ang
    assert parse_kaist_annotation(path)[0]['ignore'] == 1
    write(path, 'person 1.5 2 3 4 0 0 0 0 0\n')  # no header, version 0 fields
    assert parse_kaist_annotation(path)[0]['bbox'] == [1.5, 2, 3, 4]
    write(path, '% bbGt version=3\n')
    assert parse_kaist_annotation(path) == []


def test_parser_caltech_visible_box_convention(tmp_path):
    path = str(tmp_path / 'a.txt')
    write(
        path,
        '% bbGt version=3\n'
        'person 0 0 10 100 0 0 0 0 0 0 0\n'  # not occluded
        'person 0 0 10 100 1 0 0 0 0 0 0\n'  # flagged, no visible box: none
        'person 0 0 10 100 1 0 0 10 70 0 0\n'  # 70 % visible: partial
        'person 0 0 10 100 1 0 0 10 30 0 0\n'  # 30 % visible: heavy
        'person 0 0 10 100 1 0 0 10 100 0 0\n')  # visible box = box: heavy
    levels = [o['occlusion'] for o in parse_kaist_annotation(path, 'visible_box')]
    assert levels == [0, 0, 1, 2, 2]
    write(path, '% bbGt version=3\nperson 0 0 10 100 2 0 0 0 0 0 0\n')
    with pytest.raises(ValueError, match=r'line 2 \(person\): occlusion flag 2'):
        parse_kaist_annotation(path, 'visible_box')


@pytest.mark.parametrize(
    'text, message', [
        ('% bbGt version=3\nperson 1 2 3 4 0 0 0\n',
         r'line 2: expected 12 fields \(label x y w h occ xv yv wv hv ign ang\) '
         r'for bbGt version 3, got 8'),
        ('% bbGt version=3\nperson 1 2 abc 4 0 0 0 0 0 0 0\n',
         r"line 2 \(person\): w is 'abc', not a number"),
        ('% bbGt version=3\nperson 1 2 3 nan 0 0 0 0 0 0 0\n',
         r"line 2 \(person\): h is 'nan', not a finite number"),
        ('% bbGt version=3\n\nperson 1 2 3 4 3 0 0 0 0 0 0\n',
         r'line 3 \(person\): occlusion 3 is not 0 \(none\), 1 \(partial\) or 2'),
        ('% bbGt version=3\nperson 1 2 3 4 0 0 0 0 0 2 0\n',
         r'line 2 \(person\): ign is 2, not 0 or 1'),
        ('% bbGt version=7\n', r"line 1: unknown bbGt version '7'"),
        ('% annotations\nperson 1 2 3 4 0 0 0 0 0 0 0\n',
         r"line 1: '% annotations' is not a bbGt header"),
        ('person 1 2 3 4\n', r'expected 10 or 11 or 12 fields .* for a file '
         'without a header, got 5'),
    ],
    ids=[
        'fields', 'number', 'finite', 'occlusion', 'ign', 'version', 'header',
        'no-header'
    ])
def test_parser_errors_name_file_and_line(tmp_path, text, message):
    path = str(tmp_path / 'I00019.txt')
    write(path, text)
    with pytest.raises(ValueError) as info:
        parse_kaist_annotation(path)
    assert str(info.value).startswith(path + ': ')
    assert re.search(message, str(info.value))


# --- dataset errors ---------------------------------------------------------


def test_a_bad_annotation_line_fails_the_dataset_with_file_and_line(copy):
    path = osp.join(copy, 'annotations', 'set06', 'V000', 'I00039.txt')
    write(path, open(path).read() + 'person 1 2 3\n')
    with pytest.raises(ValueError, match=rf'{path}: line 6: expected 12 fields'):
        dataset(copy)


def test_unknown_label_names_file_line_and_label(copy):
    path = osp.join(copy, 'annotations', 'set09', 'V000', 'I00039.txt')
    write(path, '% bbGt version=3\ndog 1 2 30 40 0 0 0 0 0 0 0\n')
    with pytest.raises(
            ValueError,
            match=rf"{path}: line 2 \(dog\): label 'dog' is neither a "
            r"class \('person',\) nor an ignore label"):
        dataset(copy)
    assert infos(dataset(copy, ignore_classes=('dog', )))[3]['kaist_objects'] == []
    info = infos(dataset(copy,
                         ignore_labels=('people', 'person?', 'cyclist', 'dog')))[3]
    assert info['instances'][0]['ignore_flag'] == 1


def test_box_far_outside_the_image_is_an_error(copy):
    path = osp.join(copy, 'annotations', 'set09', 'V000', 'I00039.txt')
    write(path, '% bbGt version=3\nperson 600 100 200 100 0 0 0 0 0 0 0\n')
    with pytest.raises(
            ValueError,
            match=rf'{path}: line 2 \(person\) box \[600.0, '
            r'100.0, 200.0, 100.0\] lies outside the 640x512 image'):
        dataset(copy)
    ds = dataset(copy, box_tolerance=200)  # within tolerance: clipped
    assert infos(ds)[3]['instances'][0]['bbox'] == [600, 100, 640, 200]


def test_missing_files_and_bad_lists_name_the_path(copy):
    with pytest.raises(FileNotFoundError, match='image list .*nope.txt not found'):
        dataset(copy, ann_file='imageSets/nope.txt')
    with pytest.raises(ValueError, match='needs ann_file'):
        dataset(copy, ann_file='')
    image = osp.join(copy, 'images', 'set09', 'V000', 'lwir', 'I00019.jpg')
    os.remove(image)
    with pytest.raises(
            FileNotFoundError,
            match=rf"'set09/V000/I00019': the thermal image {image}"):
        dataset(copy)
    shutil.copy(osp.join(KAIST, 'images', 'set09', 'V000', 'lwir', 'I00019.jpg'), image)
    ann = osp.join(copy, 'annotations', 'set06', 'V000', 'I00039.txt')
    os.remove(ann)
    with pytest.raises(FileNotFoundError, match=rf'annotation {ann} does not exist'):
        dataset(copy)
    assert infos(dataset(copy, require_annotations=False))[1]['instances'] == []
    listing = osp.join(copy, 'imageSets', 'bad.txt')
    write(listing, 'set06/V000/I00019\n\nset6/V0/I19\n')
    with pytest.raises(
            ValueError,
            match=rf"{listing}: line 3: 'set6/V0/I19' is not a KAIST "
            'frame name'):
        dataset(copy, ann_file='imageSets/bad.txt')
    write(listing, 'set06/V000/I00019\nset06_V000_I00019.jpg\n')
    with pytest.raises(
            ValueError,
            match=rf'{listing}: line 2: frame '
            r'set06/V000/I00019 is listed twice \(first on line 1\)'):
        dataset(copy, ann_file='imageSets/bad.txt')


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="ann_layout must be 'nested', 'flat' or a"):
        dataset(ann_layout='{set}/{name}.txt')
    with pytest.raises(ValueError, match="occlusion must be 'level' or"):
        dataset(occlusion='fraction')
    with pytest.raises(TypeError, match='ignore_labels must be a tuple'):
        dataset(ignore_labels='people')
    with pytest.raises(ValueError, match=r"\['people'\] are both classes and"):
        dataset(metainfo=dict(classes=('person', 'people')))
