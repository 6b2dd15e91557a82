"""Generated RGB-T data in the FLIR-aligned and M3FD layouts (LLVIP: the generator's
own layout), with the classes mapped by name, for loader and config tests."""
import json
import os
import os.path as osp

import cv2

from mwam_mm.datasets.synthetic import _voc_xml, make_scene


def _scenes(num, width, height, seed):
    for i in range(num):
        vis, th, objects, _ = make_scene(seed, 'train', i, width, height, 0.5)
        yield i, vis, th, objects


def write_flir(root, num=6, width=96, height=80, seed=5, stray_dog=True):
    """VOC form (JPEGImages/, Annotations/, align_*.txt) and a COCO json."""
    names = dict(person='person', vehicle='car')
    os.makedirs(osp.join(root, 'JPEGImages'), exist_ok=True)
    os.makedirs(osp.join(root, 'Annotations'), exist_ok=True)
    stems, coco = [], dict(
        images=[],
        annotations=[],
        categories=[
            dict(id=1, name='person'),
            dict(id=3, name='car'),
            dict(id=7, name='dog')
        ])
    cat_ids = dict(person=1, car=3, dog=7)
    for i, vis, th, objects in _scenes(num, width, height, seed):
        stem = f'FLIR_{i + 1:05d}'
        objects = [dict(o, name=names[o['name']]) for o in objects]
        if stray_dog and i == 0:
            objects.append(dict(name='dog', bbox=[1, 1, 9, 9], difficult=0))
        cv2.imwrite(osp.join(root, 'JPEGImages', stem + '_RGB.jpg'), vis)
        cv2.imwrite(osp.join(root, 'JPEGImages', stem + '_PreviewData.jpeg'), th)
        with open(osp.join(root, 'Annotations', stem + '_PreviewData.xml'), 'w') as f:
            f.write(_voc_xml(stem + '_PreviewData.jpeg', width, height, objects))
        stems.append(stem + '_PreviewData')
        coco['images'].append(
            dict(
                id=i,
                file_name=stem + '_RGB.jpg',
                file_name_lwir=stem + '_PreviewData.jpeg',
                width=width,
                height=height))
        for o in objects:
            x1, y1, x2, y2 = o['bbox']
            coco['annotations'].append(
                dict(
                    id=len(coco['annotations']),
                    image_id=i,
                    iscrowd=o['difficult'],
                    category_id=cat_ids[o['name']],
                    bbox=[x1, y1, x2 - x1, y2 - y1]))
    half = num // 2
    for name, part in (('align_train.txt', stems[:half]), ('align_validation.txt',
                                                           stems[half:])):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(part) + '\n')
    with open(osp.join(root, 'Annotation_train.json'), 'w') as f:
        json.dump(coco, f)
    return root


def write_m3fd(root, num=6, width=96, height=80, seed=6):
    """Annotation/, Ir/ (24-bit grey), Vis/, PNG, plus trainval.txt/test.txt."""
    names = dict(person='People', vehicle='Car')
    for d in ('Annotation', 'Ir', 'Vis'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    stems = []
    for i, vis, th, objects in _scenes(num, width, height, seed):
        stem = f'{i:05d}'
        objects = [dict(o, name=names[o['name']]) for o in objects]
        cv2.imwrite(osp.join(root, 'Vis', stem + '.png'), vis)
        cv2.imwrite(osp.join(root, 'Ir', stem + '.png'), cv2.merge([th, th, th]))
        with open(osp.join(root, 'Annotation', stem + '.xml'), 'w') as f:
            f.write(_voc_xml(stem + '.png', width, height, objects))
        stems.append(stem)
    half = num // 2
    for name, part in (('trainval.txt', stems[:half]), ('test.txt', stems[half:])):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(part) + '\n')
    return root


def _seg_sample(i, width, height, seed, num_classes):
    """A synthetic scene and a blocky label map (values 0..num_classes-1, some 255)."""
    import numpy as np
    vis, th, _, _ = make_scene(seed, 'train', i, width, height, 0.5)
    yy, xx = np.mgrid[0:height, 0:width]
    label = ((xx // 12 + yy // 10 + i) % num_classes).astype(np.uint8)
    label[:2] = 255  # a strip of ignored pixels
    return vis, th, label


def write_mfnet(root, num=4, width=96, height=80, seed=7):
    """images/ (RGBA: RGB + thermal), labels/, train.txt, test.txt."""
    import numpy as np
    for d in ('images', 'labels'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    stems = []
    for i in range(num):
        stem = f'{i:05d}{"DN"[i % 2]}'
        vis, th, label = _seg_sample(i, width, height, seed, 9)
        cv2.imwrite(osp.join(root, 'images', stem + '.png'),
                    np.dstack([vis, th]))  # BGRA on disk = RGBA for viewers
        cv2.imwrite(osp.join(root, 'labels', stem + '.png'), label)
        stems.append(stem)
    half = num // 2
    for name, part in (('train.txt', stems[:half]), ('test.txt', stems[half:])):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(part) + '\n')
    return root


def write_split_folders(root,
                        names,
                        num=4,
                        width=96,
                        height=80,
                        seed=8,
                        num_classes=5,
                        label_offset=0):
    """{train,test}/{rgb,thermal,labels}-style folders (names: the three names)."""
    rgb_dir, thermal_dir, label_dir = names
    for split_index, split in enumerate(('train', 'test')):
        for d in names:
            os.makedirs(osp.join(root, split, d), exist_ok=True)
        for i in range(num // 2):
            index = split_index * 100 + i
            vis, th, label = _seg_sample(index, width, height, seed, num_classes)
            label[label != 255] += label_offset
            stem = f'{index:05d}'
            cv2.imwrite(osp.join(root, split, rgb_dir, stem + '.png'), vis)
            cv2.imwrite(osp.join(root, split, thermal_dir, stem + '.png'), th)
            cv2.imwrite(osp.join(root, split, label_dir, stem + '.png'), label)
    return root


def write_pst900(root, **kwargs):
    return write_split_folders(
        root, ('rgb', 'thermal', 'labels'), num_classes=5, **kwargs)


def write_fmb(root, **kwargs):
    """FMB labels: 0 = unlabeled, classes 1-14 (reduce_zero_label)."""
    return write_split_folders(
        root, ('Visible', 'Infrared', 'Label'),
        num_classes=14,
        label_offset=1,
        **kwargs)


def write_kaist(root, num=4, width=160, height=128, scale=4, seed=9):
    """KAIST layout: images/setXX/VYYY/{visible,lwir}/I*.jpg, bbGt text annotations
    (annotations/setXX/VYYY/I*.txt) and imageSets/{train-all-02,test-all-20}.txt.

    Synthetic scenes drawn at ``width`` x ``height`` and enlarged ``scale`` times
    (KAIST's 640x512 by default), so pedestrians reach the "reasonable" height of
    55 px; only scenes with such a pedestrian are used. Vehicles are written as
    ``people`` (an ignore label); occlusion is 2 for mostly hidden objects, else
    alternates 0 and 1. Train frames are in set00 (day) and set03 (night), test
    frames in set06 and set09.
    """
    names = dict(person='person', vehicle='people')
    W, H = width * scale, height * scale
    frames, index = [], 0
    while len(frames) < num:
        vis, th, objects, _ = make_scene(seed, 'train', index, width, height, 0.5)
        index += 1
        lines = ['% bbGt version=3']
        usable = False
        for k, o in enumerate(objects):
            x1, y1, x2, y2 = (v * scale for v in o['bbox'])
            occ = 2 if o['difficult'] else k % 2
            lines.append(f'{names[o["name"]]} {x1} {y1} {x2 - x1} {y2 - y1} {occ} '
                         '0 0 0 0 0 0')
            usable |= (
                o['name'] == 'person' and occ < 2 and y2 - y1 >= 55 and 5 <= x1
                and x2 <= 635 and 5 <= y1 and y2 <= 507)
        if usable:
            frames.append((vis, th, lines))
    half = num // 2
    lists = dict(train=[], test=[])
    for i, (vis, th, lines) in enumerate(frames):
        split = 'train' if i < half else 'test'
        set_id = ('set00', 'set03', 'set06', 'set09')[2 * (split == 'test') + i % 2]
        stem = f'{set_id}/V000/I{20 * i + 19:05d}'
        for modality, img in (('visible', vis), ('lwir', th)):
            folder = osp.join(root, 'images', set_id, 'V000', modality)
            os.makedirs(folder, exist_ok=True)
            cv2.imwrite(
                osp.join(folder, stem[-6:] + '.jpg'),
                cv2.resize(img, (W, H), interpolation=cv2.INTER_NEAREST))
        folder = osp.join(root, 'annotations', set_id, 'V000')
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, stem[-6:] + '.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        lists[split].append(stem)
    os.makedirs(osp.join(root, 'imageSets'), exist_ok=True)
    for split, name in (('train', 'train-all-02.txt'), ('test', 'test-all-20.txt')):
        with open(osp.join(root, 'imageSets', name), 'w') as f:
            f.write('\n'.join(lists[split]) + '\n')
    return root
