import hashlib
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from mwam_mm.datasets import LLVIPDataset, make_synthetic_rgbt


def digest(root):
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = osp.join(folder, name)
            h.update(osp.relpath(path, root).encode())
            h.update(open(path, 'rb').read())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kwargs = dict(num_train=5, num_test=3, width=64, height=48)
    make_synthetic_rgbt(str(tmp_path / 'a'), seed=11, **kwargs)
    make_synthetic_rgbt(str(tmp_path / 'b'), seed=11, **kwargs)
    make_synthetic_rgbt(str(tmp_path / 'c'), seed=12, **kwargs)
    assert digest(tmp_path / 'a') == digest(tmp_path / 'b')
    assert digest(tmp_path / 'a') != digest(tmp_path / 'c')


def test_parameters_layout_and_the_real_loader(tmp_path):
    root = str(tmp_path / 'syn')
    counts = make_synthetic_rgbt(
        root,
        seed=0,
        num_train=20,
        num_test=4,
        width=80,
        height=64,
        night_fraction=1.0,
        classes=('person', ))
    assert counts['train'] == 20 and counts['test'] == 4 and counts['train_boxes'] > 0
    assert len(open(osp.join(root, 'night_train.txt')).read().split()) == 20
    vis = cv2.imread(osp.join(root, 'visible/train/010001.jpg'))
    ir = cv2.imread(osp.join(root, 'infrared/train/010001.jpg'))
    assert vis.shape == ir.shape == (64, 80, 3)
    assert np.abs(ir[..., 0].astype(int) - ir[..., 2]).max() <= 2  # grey, as LLVIP
    ds = LLVIPDataset(data_root=root, pipeline=[dict(type='LoadRGBTImagePair')])
    assert len(ds) == 20 and ds[0]['img'].shape == (64, 80, 4)
    names = {
        open(osp.join(root, 'Annotations', f)).read().count('<name>vehicle')
        for f in os.listdir(osp.join(root, 'Annotations'))
    }
    assert names == {0}


def test_night_scenes_are_darker_in_visible_but_not_in_thermal(tmp_path):
    day, night = str(tmp_path / 'day'), str(tmp_path / 'night')
    for root, fraction in ((day, 0.0), (night, 1.0)):
        make_synthetic_rgbt(
            root,
            seed=5,
            num_train=8,
            num_test=1,
            width=64,
            height=48,
            night_fraction=fraction)

    def mean(root, modality):
        folder = osp.join(root, modality, 'train')
        return np.mean(
            [cv2.imread(osp.join(folder, f)).mean() for f in os.listdir(folder)])

    assert mean(night, 'visible') < 0.6 * mean(day, 'visible')
    assert mean(night, 'infrared') > 0.6 * mean(day, 'infrared')


def test_bad_parameters():
    with pytest.raises(ValueError, match='at least 32x32'):
        make_synthetic_rgbt('/tmp/unused', width=16, height=16)
    with pytest.raises(ValueError, match='night_fraction'):
        make_synthetic_rgbt('/tmp/unused', night_fraction=1.5)
    with pytest.raises(ValueError, match='subset of'):
        make_synthetic_rgbt('/tmp/unused', num_train=1, classes=('dog', ))
    assert not osp.exists('/tmp/unused')
