"""tools/infer.py, tools/browse_dataset.py and tools/test.py --show-dir, run
in-process as a user runs them (their main functions)."""
import glob
import json
import os
import os.path as osp
import runpy
import shutil
import sys

import cv2
import numpy as np
import pytest

import mwam_mm  # noqa: F401
from tests.conftest import DATA, ROOT
from tests.helpers.configs import tiny_config
from tests.test_apis.test_inference import (SYNTHETIC, trained_detector,
                                            trained_segmentor)

LLVIP = osp.join(DATA, 'llvip_mini')


def tool(name):
    """The tool's module namespace (its functions), loaded from tools/."""
    return runpy.run_path(osp.join(ROOT, 'tools', name))


@pytest.fixture(scope='module')
def infer():
    return tool('infer.py')['main']


@pytest.fixture(scope='module')
def detector(tmp_path_factory, synthetic_root):
    return trained_detector(tmp_path_factory, synthetic_root)


def pair(synthetic_root, index=0):
    rgb = sorted(glob.glob(osp.join(synthetic_root, 'visible', 'test', '*.jpg')))
    return rgb[index], rgb[index].replace('visible', 'infrared')


def test_infer_on_a_pair_writes_the_visualisation_and_predictions(
        detector, infer, synthetic_root, tmp_path):
    rgb, thermal = pair(synthetic_root)
    out = str(tmp_path / 'out')
    infer([
        detector['config'], detector['checkpoint'], '--rgb', rgb, '--thermal', thermal,
        '--out-dir', out, '--save-pred', '--score-thr', '0'
    ])
    stem = osp.splitext(osp.basename(rgb))[0]
    drawn = cv2.imread(osp.join(out, 'vis', stem + '.png'))
    assert drawn.shape == (80, 2 * 96, 3)  # prediction only: rgb | thermal
    pred = json.load(open(osp.join(out, 'preds', stem + '.json')))
    expected = next(r for r in detector['results'] if r['img_path'] == rgb)
    np.testing.assert_allclose(
        pred['bboxes'], expected['pred_instances']['bboxes'].numpy(), atol=0.01)
    assert pred['rgb'] == rgb and pred['thermal'] == thermal and pred['missing'] == []
    # thermal left out: the missing scenario
    infer([
        detector['config'], detector['checkpoint'], '--rgb', rgb, '--out-dir', out,
        '--save-pred', '--blend', '0.5'
    ])
    assert json.load(open(osp.join(out, 'preds', stem + '.json')))['missing'] == \
        ['thermal']
    assert cv2.imread(osp.join(out, 'vis', stem + '.png')).shape == (80, 96, 3)


def test_infer_on_the_real_llvip_pair(detector, infer, tmp_path):
    out = str(tmp_path / 'llvip')
    infer([
        detector['config'], detector['checkpoint'], '--rgb',
        osp.join(LLVIP, 'visible', 'test', '190001.jpg'), '--thermal',
        osp.join(LLVIP, 'infrared', 'test', '190001.jpg'), '--out-dir', out
    ])
    drawn = cv2.imread(osp.join(out, 'vis', '190001.png'))
    assert drawn.shape == (1024, 2 * 1280, 3)
    thermal = drawn[700:, 1280 + 1100:]  # grey thermal panel (away from boxes)
    assert (thermal[..., 0] == thermal[..., 2]).mean() > 0.99


def test_infer_on_folders_matches_names(detector, infer, synthetic_root, tmp_path):
    folders = {m: tmp_path / m for m in ('rgb', 'thermal')}
    for folder in folders.values():
        folder.mkdir()
    for index in range(2):
        rgb, thermal = pair(synthetic_root, index)
        shutil.copy(rgb, folders['rgb'])
        # another extension: pairs are matched by the name without it
        cv2.imwrite(
            str(folders['thermal'] / osp.basename(thermal).replace('.jpg', '.png')),
            cv2.imread(thermal))
    out = str(tmp_path / 'out')
    args = [
        detector['config'], detector['checkpoint'], '--rgb',
        str(folders['rgb']), '--thermal',
        str(folders['thermal']), '--out-dir', out
    ]
    infer(args)
    assert len(os.listdir(osp.join(out, 'vis'))) == 2
    (folders['rgb'] / 'extra_a.jpg').write_bytes(
        (folders['rgb'] / os.listdir(folders['rgb'])[0]).read_bytes())
    shutil.copy(rgb, folders['thermal'] / 'extra_b.jpg')
    with pytest.raises(
            ValueError,
            match=r'do not hold the same image names: only in the rgb folder .* '
            r'\(1\): extra_a; only in the thermal folder .* \(1\): extra_b'):
        infer(args)


def test_infer_refuses_a_thermal_image_of_another_size(detector, infer, synthetic_root,
                                                       tmp_path):
    rgb, thermal = pair(synthetic_root)
    small = str(tmp_path / 'small.jpg')
    cv2.imwrite(small, cv2.resize(cv2.imread(thermal), (48, 40)))
    with pytest.raises(ValueError, match=r'differ in size: .* is 96x80 .* is 48x40'):
        infer([
            detector['config'], detector['checkpoint'], '--rgb', rgb, '--thermal',
            small, '--out-dir',
            str(tmp_path / 'out')
        ])


def write_video(path, frames):
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 5,
                             (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_infer_on_videos_frame_by_frame(detector, infer, synthetic_root, tmp_path):
    pairs = [pair(synthetic_root, i) for i in range(2)]
    rgb = write_video(str(tmp_path / 'rgb.avi'), [cv2.imread(p[0]) for p in pairs])
    thermal = write_video(
        str(tmp_path / 'thermal.avi'), [cv2.imread(p[1]) for p in pairs])
    out = str(tmp_path / 'out')
    args = [
        detector['config'], detector['checkpoint'], '--rgb', rgb, '--thermal', thermal,
        '--out-dir', out, '--save-pred'
    ]
    infer(args)
    cap = cv2.VideoCapture(osp.join(out, 'vis', 'rgb.avi'))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (192, 80)
    cap.release()
    frames = json.load(open(osp.join(out, 'preds', 'rgb.json')))['frames']
    assert [f['frame'] for f in frames] == [0, 1]
    write_video(thermal, [cv2.imread(p[1]) for p in pairs[:1]])
    with pytest.raises(
            ValueError,
            match=r'different frame counts: .*rgb\.avi \(rgb\) '
            r'2, .*thermal\.avi \(thermal\) 1'):
        infer(args)


def test_infer_with_a_segmentation_model(tmp_path_factory, infer, tmp_path):
    segmentor = trained_segmentor(tmp_path_factory)
    rgb = sorted(glob.glob(osp.join(segmentor['root'], 'test', 'rgb', '*.png')))[0]
    out = str(tmp_path / 'seg')
    infer([
        segmentor['config'], segmentor['checkpoint'], '--rgb', rgb, '--thermal',
        rgb.replace('/rgb/', '/thermal/'), '--out-dir', out, '--save-pred'
    ])
    stem = osp.splitext(osp.basename(rgb))[0]
    assert cv2.imread(osp.join(out, 'vis', stem + '.png')).shape == (80, 192, 3)
    pred = json.load(open(osp.join(out, 'preds', stem + '.json')))
    assert np.asarray(pred['sem_seg']).shape == (80, 96)
    assert pred['classes'][0] == 'background'


def test_browse_dataset_writes_one_image_per_sample(synthetic_root, tmp_path):
    cfg = tiny_config(SYNTHETIC, synthetic_root, str(tmp_path / 'work'))
    config = str(tmp_path / 'browse.py')
    cfg.dump(config)
    browse = tool('browse_dataset.py')
    out = str(tmp_path / 'browse')
    browse['main']([config, '--out-dir', out])
    written = sorted(os.listdir(out))
    train = sorted(glob.glob(osp.join(synthetic_root, 'visible', 'train', '*.jpg')))
    assert len(written) == len(train)  # every training image has boxes
    assert written[0].startswith('00000_')
    assert cv2.imread(osp.join(out, written[0])).shape == (80, 2 * 96, 3)
    out = str(tmp_path / 'browse_blend')
    browse['main']([config, '--out-dir', out, '--max-samples', '2', '--blend', '0.5'])
    assert len(os.listdir(out)) == 2


def test_test_tool_show_dir_writes_one_image_per_test_sample(detector, synthetic_root,
                                                             tmp_path, monkeypatch):
    show = str(tmp_path / 'show')
    monkeypatch.setattr(sys, 'argv', [
        'test.py', detector['config'], detector['checkpoint'], '--work-dir',
        str(tmp_path / 'work'), '--show-dir', show, '--cfg-options',
        'test_dataloader.dataset.indices=3'
    ])
    runpy.run_path(osp.join(ROOT, 'tools', 'test.py'), run_name='__main__')
    written = os.listdir(show)
    assert len(written) == 3
    # ground truth | prediction, each rgb | thermal
    assert cv2.imread(osp.join(show, written[0])).shape == (80, 4 * 96, 3)
