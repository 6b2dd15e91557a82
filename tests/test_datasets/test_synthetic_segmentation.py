"""The synthetic segmentation data: the detection data's scenes with per-pixel
labels, in the MFNet layout, read by the real MFNet loader with the family's
dataset config (day / night split from the names)."""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mwam_mm.datasets import MFNetDataset, make_synthetic_rgbt
from mwam_mm.datasets.synthetic import (SEG_CLASSES, SEG_LABEL_IDS, draw_scene,
                                        make_scene, synthetic_meta)
from mwam_mm.evaluation.splits import find_day_night_splits

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CONFIG = osp.join(ROOT, 'configs', '_base_', 'datasets',
                          'synthetic_rgbt_seg.py')


def test_labels_are_the_visible_pixels_of_each_object_and_the_scene_is_unchanged():
    for index in range(6):
        scene = draw_scene(3, 'train', index, 96, 64, 0.5)
        vis, th, objects, night = make_scene(3, 'train', index, 96, 64, 0.5)
        # the labels take no random draw: the detection data's scene exactly
        assert np.array_equal(vis, scene.visible) and np.array_equal(th, scene.thermal)
        assert objects == scene.objects and night == scene.night
        assert scene.labels.dtype == np.uint8 and scene.labels.shape == (64, 96)
        assert set(np.unique(scene.labels)) <= set(SEG_LABEL_IDS.values())
        for obj in objects:  # each box is the extent of its labelled pixels
            x1, y1, x2, y2 = obj['bbox']
            inside = scene.labels[y1:y2, x1:x2] == SEG_LABEL_IDS[obj['name']]
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
    # objects are drawn: some pixels of both classes over the draws
    seen = set()
    for index in range(12):
        seen |= set(np.unique(draw_scene(0, 'test', index, 96, 64, 0.5).labels))
    assert seen == set(SEG_LABEL_IDS.values())


def test_mfnet_layout_files_names_and_meta(tmp_path):
    root = str(tmp_path / 'seg')
    counts = make_synthetic_rgbt(
        root, seed=2, num_train=6, num_test=5, width=64, height=48, task='segmentation')
    assert counts['train'] == 6 and counts['test'] == 5
    assert counts['train_object_pixels'] > 0 and counts['test_object_pixels'] > 0
    train = open(osp.join(root, 'train.txt')).read().split()
    test = open(osp.join(root, 'test.txt')).read().split()
    assert len(train) == 6 and len(test) == 5
    for i, stem in enumerate(test):
        scene = draw_scene(2, 'test', i, 64, 48, 0.5)
        assert stem == f'{190001 + i:06d}' + ('N' if scene.night else 'D')
        image = cv2.imread(
            osp.join(root, 'images', stem + '.png'), cv2.IMREAD_UNCHANGED)
        labels = cv2.imread(
            osp.join(root, 'labels', stem + '.png'), cv2.IMREAD_UNCHANGED)
        # lossless: the drawn scene itself (B, G, R, thermal), and its labels
        assert image.shape == (48, 64, 4)
        assert np.array_equal(image[..., :3], scene.visible)
        assert np.array_equal(image[..., 3], scene.thermal)
        assert np.array_equal(labels, scene.labels)
    meta = open(osp.join(root, 'meta.txt')).read().strip()
    assert meta == synthetic_meta(2, 6, 5, 64, 48, 0.5, task='segmentation')
    assert meta.endswith('layout=mfnet')
    # the detection data's meta line is unchanged: present data stays valid
    assert 'layout' not in synthetic_meta(2, 6, 5, 64, 48, 0.5)


def test_unknown_task_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="task must be one of.*'depth'"):
        make_synthetic_rgbt(str(tmp_path / 'unused'), num_train=1, task='depth')
    assert not (tmp_path / 'unused').exists()
    # also where a present dataset's parameters are compared
    with pytest.raises(ValueError, match="task must be one of.*'depth'"):
        synthetic_meta(task='depth')


def test_the_family_dataset_config_reads_it_with_the_mfnet_loader(tmp_path):
    root = str(tmp_path / 'seg')
    make_synthetic_rgbt(
        root,
        seed=0,
        num_train=4,
        num_test=6,
        width=64,
        height=48,
        night_fraction=0.5,
        task='segmentation')
    cfg = Config.fromfile(DATASET_CONFIG)
    init_default_scope('mmseg')
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset_cfg = cfg[loader].dataset.to_dict()
        assert dataset_cfg.pop('type') == 'MFNetDataset'
        dataset_cfg['data_root'] = root
        if loader == 'test_dataloader':  # the data's own size
            dataset_cfg['pipeline'][1]['scale'] = (64, 48)
        dataset = MFNetDataset(**dataset_cfg)
        assert dataset.metainfo['classes'] == SEG_CLASSES
        sample = dataset[0]
        inputs = sample['inputs']
        assert inputs.shape[0] == 4 and tuple(inputs.shape[1:]) == (48, 64)
        gt = sample['data_samples'].gt_sem_seg.data
        # MFNet's ids are kept (0 unlabeled, 1 car, 2 person), nothing ignored
        assert set(gt.unique().tolist()) <= {0, 1, 2}
    # the test samples are the drawn scenes, in order: the cameras' channels as
    # the model reads them (B, G, R as OpenCV gives them, then thermal) and the
    # label map, exactly
    for i in range(6):
        scene = draw_scene(0, 'test', i, 64, 48, 0.5)
        sample = dataset[i]
        inputs = sample['inputs'].numpy()
        assert np.array_equal(inputs[:3].transpose(1, 2, 0), scene.visible)
        assert np.array_equal(inputs[3], scene.thermal)
        gt = sample['data_samples'].gt_sem_seg.data[0].numpy()
        assert np.array_equal(gt, scene.labels)
    test_cfg = dict(cfg.test_dataloader.dataset, data_root=root)
    splits = find_day_night_splits(test_cfg)
    nights = [draw_scene(0, 'test', i, 64, 48, 0.5).night for i in range(6)]
    assert len(splits['night']) == sum(nights)
    assert len(splits['day']) == 6 - sum(nights)
    assert all(n.endswith('N') for n in splits['night'])
