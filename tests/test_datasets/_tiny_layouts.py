"""Tiny RGB-T layouts in tmp_path for the split, case, BOM and camera tests."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np

from mwam_mm.datasets.synthetic import _voc_xml, make_scene
from tests.conftest import DATA


def write_llvip(root, num=4, width=64, height=48, seed=11, split='train'):
    """``Annotations/``, ``visible/<split>/``, ``infrared/<split>/`` (JPEG)."""
    for d in ('Annotations', f'visible/{split}', f'infrared/{split}'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    stems = []
    for i in range(num):
        vis, th, objects, _ = make_scene(seed, 'train', i, width, height, 0.0,
                                         ('person', ))
        stem = f'{10001 + i:06d}'
        cv2.imwrite(osp.join(root, 'visible', split, stem + '.jpg'), vis)
        cv2.imwrite(
            osp.join(root, 'infrared', split, stem + '.jpg'), cv2.merge([th, th, th]))
        with open(osp.join(root, 'Annotations', stem + '.xml'), 'w') as f:
            f.write(_voc_xml(stem + '.jpg', width, height, objects))
        stems.append(stem)
    return stems


def llvip_prefix(split='train'):
    return dict(img=f'visible/{split}', thermal=f'infrared/{split}', ann='Annotations')


def copy_kaist(root):
    shutil.copytree(osp.join(DATA, 'kaist_mini'), root)
    return str(root)


def copy_mfnet(root):
    """The real MFNet inputs with all-zero label maps (the sample has none)."""
    shutil.copytree(osp.join(DATA, 'mfnet_mini', 'images'), osp.join(root, 'images'))
    os.makedirs(osp.join(root, 'labels'))
    for name in os.listdir(osp.join(root, 'images')):
        cv2.imwrite(osp.join(root, 'labels', name), np.zeros((480, 640), np.uint8))
    return str(root)


def write_text(path, text, bom=False):
    with open(path, 'w', encoding='utf-8-sig' if bom else 'utf-8') as f:
        f.write(text)
