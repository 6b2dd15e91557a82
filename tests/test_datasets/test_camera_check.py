"""The build-time camera check: grey "RGB" in every sampled pair (swapped folders)
or a colour (false-colour) thermal image is reported, naming the files."""
import os
import os.path as osp
from unittest import mock

import cv2
import numpy as np
import pytest

import mwam_mm  # noqa: F401
from mwam_mm.datasets import (KAISTDataset, LLVIPDataset, M3FDDataset, MFNetDataset,
                              PST900Dataset, make_synthetic_rgbt)
from mwam_mm.datasets.synthetic import CLASSES
from tests.conftest import DATA
from tests.helpers.layouts import write_mfnet, write_pst900
from tests.test_datasets._tiny_layouts import copy_mfnet, llvip_prefix, write_llvip

LOG = 'mwam_mm.datasets.camera_check.print_log'


def llvip(root, **kwargs):
    kwargs.setdefault('data_prefix', llvip_prefix())
    return LLVIPDataset(data_root=root, pipeline=[], **kwargs)


def warnings_of(build):
    with mock.patch(LOG) as log:
        ds = build()
    return ds, [call.args[0] for call in log.call_args_list]


def swap_folders(root):
    os.rename(osp.join(root, 'visible'), osp.join(root, 'tmp'))
    os.rename(osp.join(root, 'infrared'), osp.join(root, 'visible'))
    os.rename(osp.join(root, 'tmp'), osp.join(root, 'infrared'))


def test_swapped_folders_warn_or_raise_naming_the_files(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    swap_folders(root)
    _, logged = warnings_of(lambda: llvip(root))
    assert len(logged) == 1
    assert 'RGB images are grey (three equal channels) in all 4 sampled pair(s)' \
        in logged[0]
    assert 'visible/train/010001.jpg' in logged[0]
    assert 'swapped' in logged[0]
    with pytest.raises(ValueError, match=r'LLVIPDataset: the RGB images are grey'):
        llvip(root, camera_check='error')
    _, logged = warnings_of(lambda: llvip(root, camera_check='off'))
    assert logged == []


def test_false_colour_thermal_is_reported(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    path = osp.join(root, 'infrared/train/010003.jpg')
    cv2.imwrite(path, cv2.applyColorMap(cv2.imread(path, 0), cv2.COLORMAP_JET))
    _, logged = warnings_of(lambda: llvip(root))
    assert len(logged) == 1
    assert '1 of the sampled thermal images are colour' in logged[0]
    assert 'infrared/train/010003.jpg' in logged[0]
    assert '010001' not in logged[0]
    with pytest.raises(ValueError, match=r'infrared/train/010003\.jpg'):
        llvip(root, camera_check='error')


def test_jpeg_chroma_noise_and_small_overlays_on_grey_thermal_pass(tmp_path):
    root = str(tmp_path)
    write_llvip(root, width=160, height=128)
    rng = np.random.RandomState(0)
    for i, name in enumerate(sorted(os.listdir(osp.join(root, 'infrared/train')))):
        path = osp.join(root, 'infrared/train', name)
        grey = cv2.imread(path, 0).astype(np.int16)
        img = np.dstack([grey] * 3) + rng.randint(-3, 4, grey.shape + (3, ))
        img = img.clip(0, 255).astype(np.uint8)
        if i == 0:
            img[:6, :40] = (0, 0, 255)  # a red timestamp: 1.2 % of the pixels
        cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 40])
    _, logged = warnings_of(lambda: llvip(root, camera_check='error'))
    assert logged == []


def test_one_channel_and_16_bit_thermal_pass(tmp_path):
    root = str(tmp_path)
    write_llvip(root, num=2)
    folder = osp.join(root, 'infrared/train')
    for name in ('010001', '010002'):
        grey = cv2.imread(osp.join(folder, name + '.jpg'), 0)
        os.remove(osp.join(folder, name + '.jpg'))
        if name == '010001':
            cv2.imwrite(osp.join(folder, name + '.png'), grey)  # one channel
        else:
            cv2.imwrite(osp.join(folder, name + '.png'), grey.astype(np.uint16) * 200)
    _, logged = warnings_of(
        lambda: llvip(root, thermal_suffix='.png', camera_check='error'))
    assert logged == []


def test_one_grey_rgb_frame_among_colour_ones_passes(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    path = osp.join(root, 'visible/train/010002.jpg')
    cv2.imwrite(path, cv2.cvtColor(cv2.imread(path, 0), cv2.COLOR_GRAY2BGR))
    _, logged = warnings_of(lambda: llvip(root, camera_check='error'))
    assert logged == []


def test_lazy_init_checks_at_full_init(tmp_path):
    root = str(tmp_path)
    write_llvip(root)
    swap_folders(root)
    ds, logged = warnings_of(lambda: llvip(root, lazy_init=True))
    assert logged == []
    with mock.patch(LOG) as log:
        ds.full_init()
        ds.full_init()  # once
    assert log.call_count == 1
    assert 'RGB images are grey' in log.call_args.args[0]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(
            ValueError, match="camera_check must be 'warn', 'error' or "
            "'off', got 'on'"):
        llvip(str(tmp_path), camera_check='on')
    with pytest.raises(ValueError, match='camera_check must be'):
        MFNetDataset(data_root=str(tmp_path), pipeline=[], camera_check=True)


def test_samples_are_spread_evenly_and_deterministic():
    from mwam_mm.datasets.camera_check import sample_indices
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(100) == [0, 14, 28, 42, 57, 71, 85, 99]
    assert sample_indices(0) == []


def test_mfnet_stacked_files_with_grey_rgb_warn(tmp_path):
    root = write_mfnet(str(tmp_path))
    folder = osp.join(root, 'images')
    for name in os.listdir(folder):
        img = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
        grey = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
        cv2.imwrite(osp.join(folder, name), np.dstack([grey, grey, grey, img[..., 3]]))
    _, logged = warnings_of(lambda: MFNetDataset(data_root=root, pipeline=[]))
    assert len(logged) == 1
    assert 'MFNetDataset: the RGB images are grey' in logged[0]
    assert 'images/00000D.png' in logged[0]


def test_segmentation_colour_thermal_warns(tmp_path):
    root = write_pst900(str(tmp_path))
    path = osp.join(root, 'train/thermal/00001.png')
    cv2.imwrite(path, cv2.applyColorMap(cv2.imread(path, 0), cv2.COLORMAP_INFERNO))
    _, logged = warnings_of(lambda: PST900Dataset(data_root=root, pipeline=[]))
    assert len(logged) == 1 and 'train/thermal/00001.png' in logged[0]


@pytest.mark.parametrize('name',
                         ['llvip_train', 'llvip_test', 'm3fd', 'mfnet', 'kaist'])
def test_real_sample_data_passes(tmp_path, name):
    llvip_root = osp.join(DATA, 'llvip_mini')
    build = dict(
        llvip_train=lambda: llvip(
            llvip_root, camera_check='error', data_prefix=llvip_prefix('train')),
        llvip_test=lambda: llvip(
            llvip_root,
            camera_check='error',
            data_prefix=llvip_prefix('test'),
            require_annotations=False),
        m3fd=lambda: M3FDDataset(
            data_root=osp.join(DATA, 'm3fd_mini'), pipeline=[], camera_check='error'),
        mfnet=lambda: MFNetDataset(
            data_root=copy_mfnet(tmp_path / 'mfnet'), pipeline=[], camera_check='error'
        ),
        kaist=lambda: KAISTDataset(
            data_root=osp.join(DATA, 'kaist_mini'),
            ann_file='imageSets/test-mini.txt',
            pipeline=[],
            test_mode=True,
            camera_check='error'))[name]
    ds, logged = warnings_of(build)
    assert len(ds) > 0
    assert logged == []


@pytest.mark.parametrize('night_fraction', [0.5, 1.0])
def test_synthetic_data_passes(tmp_path, night_fraction):
    root = str(tmp_path)
    make_synthetic_rgbt(
        root,
        seed=3,
        num_train=8,
        num_test=2,
        width=96,
        height=80,
        night_fraction=night_fraction)
    for split in ('train', 'test'):
        _, logged = warnings_of(lambda: llvip(
            root,
            data_prefix=llvip_prefix(split),
            metainfo=dict(classes=CLASSES),
            camera_check='error'))
        assert logged == []
