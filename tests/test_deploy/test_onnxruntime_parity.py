"""ONNX Runtime against PyTorch on the same pairs, with and without a camera
marked missing: the exported synthetic detector (also on the real LLVIP pair),
a tiny segmentor and a tiny Faster R-CNN."""
import json

import numpy as np
import onnx
import pytest
import torch
from mmengine.config import Config

from mwam_mm.apis import inference_rgbt, init_rgbt_model
from mwam_mm.deploy import ONNXRuntimeRGBTModel, export_onnx
from tests.conftest import ROOT
from tests.helpers import detectors
from tests.test_deploy.conftest import LLVIP_PAIR, synthetic_test_pairs

MISSING = [None, 'thermal', 'rgb']


def run_pair(model, pair, missing):
    rgb, thermal = pair
    return inference_rgbt(
        model,
        None if missing == 'rgb' else rgb,
        None if missing == 'thermal' else thermal,
        missing=missing)


def assert_same_detections(want, got, score_tol=1e-4):
    """Boxes within 1e-3 relative, scores within ``score_tol``, labels equal,
    matched detection by detection (near-equal scores may swap places).

    Only at the cut-off (max_per_img, score_thr) may the kept sets differ: a
    detection scoring within ``score_tol`` of the lowest kept score may be kept
    by one runtime and dropped by the other, float noise deciding the rank.
    """
    want, got = want.pred_instances, got.pred_instances
    assert len(want) > 0 and len(got) > 0
    cutoff = float(min(want.scores.min(), got.scores.min())) + score_tol
    free = list(range(len(got)))
    for box, score, label in zip(want.bboxes, want.scores, want.labels):
        close = [
            j for j in free
            if got.labels[j] == label and abs(float(got.scores[j] - score)) <= score_tol
            and bool(((got.bboxes[j] - box).abs() <= 1e-3 *
                      box.abs().clamp(min=1)).all())
        ]
        if close:
            free.remove(close[0])
        else:
            assert score <= cutoff, \
                f'no ONNX Runtime detection matches {box.tolist()} {score:.5f}'
    left = [float(got.scores[j]) for j in free]
    assert all(s <= cutoff for s in left), \
        f'ONNX Runtime detections {left} above the cut-off {cutoff:.5f} match none'


@pytest.fixture(scope='module')
def det_models(exported_detector):
    return (init_rgbt_model(exported_detector['config'],
                            exported_detector['checkpoint']),
            init_rgbt_model(
                exported_detector['config'],
                exported_detector['onnx'],
                backend='onnxruntime'))


def test_the_export_writes_a_valid_graph_and_its_description(exported_detector):
    path = exported_detector['onnx']
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    assert {node.domain for node in graph.graph.node} <= {'', 'ai.onnx'}
    with open(path[:-len('.onnx')] + '.json') as f:
        meta = json.load(f)
    assert list(meta['inputs']) == ['image', 'image_shape', 'scale_factor', 'presence']
    assert meta['inputs']['image']['shape'] == ['batch', 4, 128, 160]
    assert list(meta['outputs']) == ['boxes', 'scores', 'labels']
    assert meta['classes'] == ['person', 'vehicle']
    assert meta['preprocessing']['mean'][:3] == [123.675, 116.28, 103.53]
    assert meta['preprocessing']['channel_order'] == [2, 1, 0, 3]  # BGR stored
    assert Config.fromstring(meta['config'], '.py').model.type == \
        'RGBTSingleStageDetector'


@pytest.mark.parametrize('missing', MISSING)
def test_detector_parity_on_the_synthetic_pairs(det_models, synthetic_root, missing):
    torch_model, ort_model = det_models
    for pair in synthetic_test_pairs(synthetic_root):
        want = run_pair(torch_model, pair, missing)
        got = run_pair(ort_model, pair, missing)
        assert got.metainfo.get('missing_modalities', []) == \
            want.metainfo.get('missing_modalities', [])
        assert_same_detections(want, got)


@pytest.mark.parametrize('missing', MISSING)
def test_detector_parity_on_the_real_llvip_pair(det_models, missing):
    torch_model, ort_model = det_models
    assert_same_detections(
        run_pair(torch_model, LLVIP_PAIR, missing),
        run_pair(ort_model, LLVIP_PAIR, missing))


def test_a_black_camera_is_treated_as_missing_unless_the_check_is_off(
        det_models, exported_detector):
    # the presence input is wired: a black thermal frame is marked missing by
    # the config's dead-camera check (in the data preprocessor, before the
    # graph); without the check it is a real black image, and the detections
    # differ from the marked ones, in both backends alike
    torch_model, ort_model = det_models
    black = np.zeros((1024, 1280), np.uint8)
    marked = run_pair(ort_model, LLVIP_PAIR, 'thermal')
    detected = inference_rgbt(ort_model, LLVIP_PAIR[0], black)
    assert detected.metainfo['missing_modalities'] == ['thermal']
    assert_same_detections(marked, detected)
    off = {'model.data_preprocessor.dead_camera': None}
    ort_off = init_rgbt_model(
        exported_detector['config'],
        exported_detector['onnx'],
        cfg_options=off,
        backend='onnxruntime')
    torch_off = init_rgbt_model(
        exported_detector['config'], exported_detector['checkpoint'], cfg_options=off)
    unmarked = inference_rgbt(ort_off, LLVIP_PAIR[0], black)
    assert not unmarked.metainfo.get('missing_modalities')
    assert_same_detections(inference_rgbt(torch_off, LLVIP_PAIR[0], black), unmarked)
    assert not torch.equal(marked.pred_instances.scores, unmarked.pred_instances.scores)


def test_a_batch_runs_in_one_call_with_the_dynamic_batch(det_models, synthetic_root):
    torch_model, ort_model = det_models
    pairs = synthetic_test_pairs(synthetic_root)[:3]
    rgb, thermal = [p[0] for p in pairs], [p[1] for p in pairs]
    calls = []
    run = ort_model.run
    ort_model.run = lambda feeds: calls.append(feeds['image'].shape) or run(feeds)
    try:
        # one test_step with three samples (the API feeds one at a time)
        from mwam_mm.apis.inference import _Pipelines
        loading, rest = _Pipelines(ort_model, ort_model.layout, [], 'zero').get(False)
        data = [
            rest(loading(dict(img_path=r, thermal_path=t, img_id=i)))
            for i, (r, t) in enumerate(zip(rgb, thermal))
        ]
        batch = ort_model.test_step(
            dict(
                inputs=[d['inputs'] for d in data],
                data_samples=[d['data_samples'] for d in data]))
    finally:
        ort_model.run = run
    assert calls == [(3, 4, 128, 160)]
    for sample, r, t in zip(batch, rgb, thermal):
        assert_same_detections(inference_rgbt(torch_model, r, t), sample)


@pytest.mark.parametrize('missing', MISSING)
def test_segmentor_parity(exported_segmentor, missing):
    torch_model = exported_segmentor['model']
    ort_model = ONNXRuntimeRGBTModel(exported_segmentor['onnx'])
    for pair in exported_segmentor['pairs']:
        want = run_pair(torch_model, pair, missing).pred_sem_seg.data
        got = run_pair(ort_model, pair, missing).pred_sem_seg.data
        assert want.shape == got.shape == (1, 80, 96)  # original size
        assert float((want == got).float().mean()) >= 0.999
    assert exported_segmentor['meta']['verify']['seg_map'] == 0


def test_segmentor_class_map_only_without_presence(exported_segmentor, tmp_path):
    model = exported_segmentor['model']
    out = str(tmp_path / 'map_only.onnx')
    meta = export_onnx(
        model, out, shape=exported_segmentor['meta']['input_size'], with_presence=False)
    assert list(meta['inputs']) == ['image'] and list(meta['outputs']) == ['seg_map']
    ort_model = ONNXRuntimeRGBTModel(out)
    for pair in exported_segmentor['pairs']:
        want = run_pair(model, pair, None).pred_sem_seg.data
        got = run_pair(ort_model, pair, None).pred_sem_seg.data
        # the class map resized (nearest) where mmseg resizes logits: borders
        assert float((want == got).float().mean()) >= 0.95
    with pytest.raises(ValueError, match='without the presence input'):
        run_pair(ort_model, exported_segmentor['pairs'][0], 'thermal')
    # a black camera is not marked (the graph cannot be told): it goes in as is
    rgb = exported_segmentor['pairs'][0][0]
    black = inference_rgbt(ort_model, rgb, np.zeros((80, 96), np.uint8))
    assert not black.metainfo.get('missing_modalities')


def test_faster_rcnn_parity(tmp_path):
    cfg = Config.fromfile(
        f'{ROOT}/configs/detection/faster-rcnn_dual-r18_fpn_1xb8-12e_llvip.py')
    cfg.model = detectors.frcnn_cfg(data_preprocessor=cfg.model.data_preprocessor)
    torch.manual_seed(0)
    model = init_rgbt_model(cfg)
    model.init_weights()
    # initialised classifiers (std 0.01) hardly depend on their input; scaled,
    # a wrong proposal or RoI feature changes the scores and labels
    with torch.no_grad():
        model.rpn_head.rpn_cls.weight *= 30
        model.roi_head.bbox_head.fc_cls.weight *= 300
    model.eval()
    out = str(tmp_path / 'frcnn.onnx')
    meta = export_onnx(model, out, shape=(64, 96), dynamic_batch=True)
    assert meta['verify']['labels'] == 0
    ort_model = ONNXRuntimeRGBTModel(out)
    g = torch.Generator().manual_seed(2)
    image = torch.randn(3, 4, 64, 96, generator=g)
    presence = torch.tensor([[True, True], [True, False], [False, True]])
    outs = ort_model.run(
        dict(
            image=image.numpy(),
            image_shape=np.array([[64, 96], [60, 90], [64, 80]], np.int64),
            scale_factor=np.array([[1.0, 1.0], [0.5, 0.5], [2.0, 1.5]], np.float32),
            presence=presence.numpy()))
    from mmdet.structures import DetDataSample
    for i, (shape, scale) in enumerate([((64, 96), (1.0, 1.0)), ((60, 90), (0.5, 0.5)),
                                        ((64, 80), (2.0, 1.5))]):
        missing = [n for n, here in zip(['rgb', 'thermal'], presence[i]) if not here]
        sample = DetDataSample(
            metainfo=dict(
                img_shape=shape,
                scale_factor=scale,
                ori_shape=shape,
                batch_input_shape=(64, 96),
                missing_modalities=missing))
        with torch.no_grad():
            want = model.predict(image[i:i + 1], [sample])[0]
        got = DetDataSample()
        ORT = ONNXRuntimeRGBTModel
        ORT._add_detections({k: v[i:i + 1] for k, v in outs.items()}, [got])
        assert_same_detections(want, got)


def test_segformer_parity(tmp_path):
    from tests.helpers import segmentors
    cfg = Config.fromfile(
        f'{ROOT}/configs/segmentation/segformer_dual-mit-b0_1xb2-160k_mfnet.py')
    cfg.model = dict(
        segmentors.model_cfg(segmentors.SEGFORMER),
        data_preprocessor=cfg.model.data_preprocessor)
    torch.manual_seed(0)
    model = init_rgbt_model(cfg)
    out = str(tmp_path / 'segformer.onnx')
    meta = export_onnx(model, out, shape=(64, 64), with_logits=True)
    assert meta['verify']['seg_map'] == 0
    ort_model = ONNXRuntimeRGBTModel(out)
    g = torch.Generator().manual_seed(3)
    for presence in ([[True, True]], [[True, False]], [[False, True]]):
        image = torch.randn(1, 4, 64, 64, generator=g)
        outs = ort_model.run(dict(image=image.numpy(), presence=np.array(presence)))
        metas = [
            dict(
                img_shape=(64, 64),
                pad_shape=(64, 64),
                missing_modalities=[
                    n for n, here in zip(['rgb', 'thermal'], presence[0]) if not here
                ])
        ]
        with torch.no_grad():
            logits = model.encode_decode(image, metas)
        agree = (torch.from_numpy(outs['seg_map']) == logits.argmax(dim=1)).float()
        assert float(agree.mean()) >= 0.999
        assert np.abs(outs['seg_logits'] - logits.numpy()).max() < 1e-4
