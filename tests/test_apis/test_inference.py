"""The inference API against the test loop, the missing scenario and bad input.

The tiny trained models here (2 iterations; also trained with the TensorBoard
backend and MWAMHook) are shared with the visualisation and tool tests through
:func:`trained_detector` / :func:`trained_segmentor`, trained once per session.
"""
import os.path as osp
import pickle
import uuid

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.apis import (build_rgbt_visualizer, inference_rgbt, init_rgbt_model,
                          prediction_to_dict)
from mwam_mm.compat import CheckpointMismatchError
from mwam_mm.engine import build_runner
from mwam_mm.visualization.rgbt_visualizer import enable_test_visualization
from tests.helpers.configs import shrink_pipelines, tiny_config

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
PST900 = 'configs/segmentation/deeplabv3plus_dual-r18-d8_1xb2-80k_pst900.py'
_TRAINED = {}


def _train_and_dump(cfg, work):
    """Train, then run the test loop once (batch 1), dumping its predictions."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_dataloader.batch_size = 1
    dump = osp.join(work, 'test_results.pkl')
    evaluator = cfg.test_evaluator
    cfg.test_evaluator = (list(evaluator) if isinstance(evaluator, list) else
                          [evaluator]) + [dict(type='DumpResults', out_file_path=dump)]
    # a visualizer of its own: mmengine reuses instances by name
    cfg.visualizer.name = f'visualizer_{uuid.uuid4().hex[:8]}'
    config = osp.join(work, 'tiny.py')
    cfg.dump(config)
    runner = build_runner(cfg)
    runner.train()
    runner.test()
    with open(dump, 'rb') as f:
        results = pickle.load(f)
    return dict(
        config=config,
        checkpoint=osp.join(work, f'iter_{cfg.train_cfg.max_iters}.pth'),
        work=work,
        results=results)


def trained_detector(tmp_path_factory, synthetic_root):
    """The demo's slim RetinaNet, 2 iterations with MWAMHook and TensorBoard."""
    if 'det' not in _TRAINED:
        work = str(tmp_path_factory.mktemp('trained_det'))
        cfg = tiny_config(
            SYNTHETIC,
            synthetic_root,
            work,
            iters=2,
            custom_hooks=[dict(type='MWAMHook')])
        # few, but always some, boxes: the comparison needs predictions
        cfg.model.test_cfg.update(score_thr=0.0, nms_pre=100, max_per_img=20)
        cfg.visualizer.vis_backends = [
            dict(type='LocalVisBackend'),
            dict(type='TensorboardVisBackend')
        ]
        # mmengine keeps one visualizer per name per process: a name of its own, so
        # that no other runner of the session reuses (or lends) these backends
        cfg.visualizer.name = f'trained-det-{osp.basename(work)}'

        _TRAINED['det'] = _train_and_dump(cfg, work)
    return _TRAINED['det']


def trained_segmentor(tmp_path_factory):
    """DeepLabV3+ on generated PST900-layout data, 1 iteration."""
    if 'seg' not in _TRAINED:
        from tests.helpers.layouts import write_pst900
        root = write_pst900(str(tmp_path_factory.mktemp('pst900')))
        work = str(tmp_path_factory.mktemp('trained_seg'))
        cfg = shrink_pipelines(tiny_config(PST900, root, work, iters=1, batch_size=2))
        # the test loop also draws every sample (tools/test.py --show-dir)
        enable_test_visualization(cfg, osp.join(work, 'show'))
        _TRAINED['seg'] = dict(
            _train_and_dump(cfg, work), root=root, show=osp.join(work, 'show'))
    return _TRAINED['seg']


@pytest.fixture(scope='module')
def detector(tmp_path_factory, synthetic_root):
    return trained_detector(tmp_path_factory, synthetic_root)


@pytest.fixture(scope='module')
def det_model(detector):
    return init_rgbt_model(detector['config'], detector['checkpoint'])


def assert_same_instances(expected: dict, got) -> None:
    assert len(expected['bboxes']) > 0
    assert torch.allclose(expected['bboxes'], got.bboxes, atol=1e-4)
    assert torch.allclose(expected['scores'], got.scores, atol=1e-6)
    assert torch.equal(expected['labels'], got.labels)


def test_inference_gives_the_test_loops_predictions(detector, det_model):
    results = detector['results'][:2]
    assert det_model.dataset_meta['classes'] == ('person', 'vehicle')
    one = inference_rgbt(det_model, results[0]['img_path'], results[0]['thermal_path'])
    assert_same_instances(results[0]['pred_instances'], one.pred_instances)
    assert one.ori_shape == results[0]['ori_shape']
    # lists of paths, and arrays as OpenCV reads them (thermal 3-channel grey)
    rgb = [r['img_path'] for r in results]
    thermal = [r['thermal_path'] for r in results]
    for given in ((rgb, thermal), ([cv2.imread(p)
                                    for p in rgb], [cv2.imread(p) for p in thermal])):
        samples = inference_rgbt(det_model, *given)
        assert len(samples) == 2
        for expected, sample in zip(results, samples):
            assert_same_instances(expected['pred_instances'], sample.pred_instances)
    pred = prediction_to_dict(one, det_model.dataset_meta)
    assert len(pred['bboxes']) == len(pred['scores']) == len(one.pred_instances)
    assert set(pred['label_names']) <= {'person', 'vehicle'}


def test_a_missing_modality_is_blanked_and_marked(detector, det_model):
    result = detector['results'][0]
    without, images = inference_rgbt(
        det_model, result['img_path'], None, missing='thermal', return_images=True)
    given = inference_rgbt(
        det_model, result['img_path'], result['thermal_path'], missing=['thermal'])
    for sample in (without, given):
        assert sample.metainfo['missing_modalities'] == ['thermal']
    # the image is blanked either way: the same predictions
    assert torch.equal(without.pred_instances.bboxes, given.pred_instances.bboxes)
    assert images.shape == (80, 96, 4) and not images[..., 3].any()
    assert images[..., :3].any()
    with pytest.raises(ValueError, match='no thermal image for sample 0'):
        inference_rgbt(det_model, result['img_path'], None)
    with pytest.raises(ValueError, match='every modality is declared missing'):
        inference_rgbt(det_model, result['img_path'], None, missing=['rgb', 'thermal'])
    with pytest.raises(KeyError, match='unknown modality'):
        inference_rgbt(det_model, result['img_path'], None, missing='depth')


def test_bad_pairs_are_refused(detector, det_model, tmp_path):
    result = detector['results'][0]
    rgb = cv2.imread(result['img_path'])
    small = cv2.resize(cv2.imread(result['thermal_path']), (48, 40))
    with pytest.raises(ValueError, match=r'differ in size.*96x80.*48x40'):
        inference_rgbt(det_model, rgb, small)
    path = str(tmp_path / 'small.png')
    cv2.imwrite(path, small)
    with pytest.raises(ValueError, match=r'differ in size.*small\.png is 48x40'):
        inference_rgbt(det_model, result['img_path'], path)
    with pytest.raises(ValueError, match='2 RGB images but 1 thermal'):
        inference_rgbt(det_model, [rgb, rgb], [small])
    with pytest.raises(TypeError, match='dtype float64'):
        inference_rgbt(det_model, rgb.astype(float), rgb)


def test_a_checkpoint_of_another_modality_layout_is_refused(detector, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(detector['config'])
    modalities = [dict(name='rgb'), dict(name='thermal', channels=3)]
    cfg.model.backbone.modalities = modalities
    cfg.model.data_preprocessor.modalities = modalities
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    checkpoint = str(tmp_path / 'thermal3.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)thermal3\.pth was trained with the modality layout rgb: 3 '
            r'channels, thermal: 3 channels .*backbone\.streams\.thermal\.conv1\.'
            r'weight .*the config\'s model has rgb: 3 channels, thermal: 1 channel'):
        init_rgbt_model(detector['config'], checkpoint)


def test_segmentation_inference_gives_the_test_loops_predictions(tmp_path_factory):
    segmentor = trained_segmentor(tmp_path_factory)
    model = init_rgbt_model(segmentor['config'], segmentor['checkpoint'])
    expected = segmentor['results'][0]
    thermal = expected['img_path'].replace('/rgb/', '/thermal/')
    sample = inference_rgbt(model, expected['img_path'], thermal)
    assert sample.pred_sem_seg.data.shape[-2:] == (80, 96)
    assert torch.equal(sample.pred_sem_seg.data, expected['pred_sem_seg']['data'])
    missing = inference_rgbt(model, None, thermal, missing='rgb')
    assert missing.metainfo['missing_modalities'] == ['rgb']
    visualizer = build_rgbt_visualizer(model)
    visualizer.add_datasample(
        'seg', np.zeros((80, 96, 4), np.uint8), sample, draw_gt=False)
    assert visualizer.get_image().shape == (80, 192, 3)
    assert np.asarray(prediction_to_dict(sample)['sem_seg']).shape == (80, 96)
