"""The export modules in PyTorch: the same predictions as mmdet's and mmseg's
``predict`` for every presence pattern, and the custom operators equal to
mmcv's kernels. No ONNX here (fast)."""
import copy

import pytest
import torch
from mmcv.ops import batched_nms
from mmdet.structures import DetDataSample
from mmengine.registry import MODELS, DefaultScope

from mwam_mm.deploy import (ExportError, SegmentationGraph, detection_graph,
                            fused_features)
from mwam_mm.deploy.ops import nms_keep
from tests.helpers import detectors, segmentors

PRESENCE = {
    'all present': None,
    'thermal missing in one': [[True, True], [True, False]],
    'rgb missing in one': [[False, True], [True, True]],
    'each missing one': [[True, False], [False, True]],
}


def presence_tensor(rows):
    return None if rows is None else torch.tensor(rows)


def backbone(fusion, **options):
    cfg = dict(
        type='DualStreamBackbone',
        backbone=dict(type='ResNet', depth=18, base_channels=8, out_indices=(1, 2)),
        fusion=dict(type=fusion),
        **options)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmdet'):
        module = MODELS.build(cfg)
    module.init_weights()
    return module.eval()


@pytest.mark.parametrize('fusion', ['AddFusion', 'ConcatConvFusion', 'GatedFusion'])
@pytest.mark.parametrize('pattern', list(PRESENCE))
def test_fused_features_are_the_backbones(fusion, pattern):
    module = backbone(fusion)
    x = torch.randn(2, 4, 64, 64)
    presence = presence_tensor(PRESENCE[pattern])
    with torch.no_grad():
        want = module(x, presence)
        got = fused_features(module, x, presence)
        # the graph always gets a mask: all True must equal None
        full = fused_features(module, x, torch.ones(2, 2, dtype=torch.bool)) \
            if presence is None else got
    for w, g, f in zip(want, got, full):
        assert torch.equal(w, g)
        assert torch.equal(w, f)


def test_an_ignored_modality_is_missing_in_the_graph_too():
    module = backbone('GatedFusion', ignore_modalities=['thermal'])
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        want = module(x)
        got = fused_features(module, x, torch.ones(2, 2, dtype=torch.bool))
    for w, g in zip(want, got):
        assert torch.equal(w, g)


def test_nms_keep_is_mmcvs_batched_nms():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(2, 300, 2, generator=g) * 100
    wh = torch.rand(2, 300, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=-1)
    scores = torch.rand(2, 300, generator=g)
    labels = torch.randint(0, 3, (2, 300), generator=g)
    for b in range(2):
        _, want = batched_nms(boxes[b], scores[b], labels[b],
                              dict(type='nms', iou_threshold=0.5))
        offsets = labels[b].float() * (boxes[b].max() + 1)
        keep = nms_keep(boxes[b:b + 1] + offsets.view(1, -1, 1), scores[b:b + 1], 0.5,
                        -1.0)[0]
        assert sorted(want.tolist()) == torch.nonzero(keep).view(-1).tolist()
        assert 0 < keep.sum() < 300
    # a score threshold drops the candidates at or below it
    keep = nms_keep(boxes, scores, 1.0, 0.5)
    assert torch.equal(keep, scores > 0.5)


def detection_samples(presence, size=64, scale=(1.0, 1.0)):
    samples = []
    for i in range(2):
        missing = [] if presence is None else [
            name for name, here in zip(['rgb', 'thermal'], presence[i]) if not here
        ]
        samples.append(
            DetDataSample(
                metainfo=dict(
                    img_shape=(size - 8 * i, size),
                    ori_shape=(size, size),
                    scale_factor=scale,
                    batch_input_shape=(size, size),
                    pad_shape=(size, size),
                    missing_modalities=missing)))
    return samples


def graph_inputs(samples, presence):
    shape = torch.tensor([list(s.img_shape) for s in samples])
    scale = torch.tensor([list(s.scale_factor) for s in samples])
    mask = torch.ones(2, 2, dtype=torch.bool) if presence is None else \
        torch.tensor(presence)
    return shape, scale, mask


def assert_same_detections(results, outputs):
    boxes, scores, labels = outputs
    total = 0
    for i, result in enumerate(results):
        pred = result.pred_instances
        n = len(pred.scores)
        total += n
        assert int((labels[i] >= 0).sum()) == n
        assert torch.equal(pred.labels, labels[i, :n])
        assert torch.allclose(pred.bboxes, boxes[i, :n], rtol=1e-5, atol=1e-4)
        assert torch.allclose(pred.scores, scores[i, :n], rtol=0, atol=1e-6)
        assert bool((labels[i, n:] == -1).all()) and bool((scores[i, n:] == 0).all())
    assert total > 0


@pytest.mark.parametrize('kind', ['retinanet', 'faster-rcnn'])
@pytest.mark.parametrize('pattern', list(PRESENCE))
def test_detection_graph_gives_mmdets_predictions(kind, pattern):
    torch.manual_seed(0)
    model = detectors.build(detectors.CONFIGS[kind]())
    model.init_weights()
    model.eval()
    if kind == 'retinanet':
        model.bbox_head.test_cfg.update(score_thr=0.0, nms_pre=200)
    graph = detection_graph(model).eval()
    presence = PRESENCE[pattern]
    samples = detection_samples(presence, scale=(1.25, 0.8))
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        want = model.predict(x, copy.deepcopy(samples))
        got = graph(x, *graph_inputs(samples, presence))
    assert_same_detections(want, got)


def test_boxes_past_the_border_are_kept_when_the_coder_does_not_clip():
    torch.manual_seed(0)
    cfg = detectors.retina_cfg()
    cfg.bbox_head.bbox_coder.clip_border = False
    model = detectors.build(cfg)
    model.init_weights()
    model.eval()
    model.bbox_head.test_cfg.update(score_thr=0.0, nms_pre=200)
    samples = detection_samples(None)
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        want = model.predict(x, copy.deepcopy(samples))
        got = detection_graph(model).eval()(x, *graph_inputs(samples, None))
    assert_same_detections(want, got)
    assert float(got[0].max()) > 64 or float(got[0].min()) < 0  # not clipped


@pytest.mark.parametrize('key,value,message', [
    ('nms_pre', 0, r'model.test_cfg.nms_pre is 0; the export needs a positive'),
    ('nms_pre', -1, r'model.test_cfg.nms_pre is -1'),
    ('max_per_img', 0, r'model.test_cfg.max_per_img is 0; the graph returns a fixed'),
])
def test_test_settings_the_graph_cannot_follow_are_named(key, value, message):
    model = detectors.build(detectors.retina_cfg()).eval()
    model.bbox_head.test_cfg[key] = value
    with pytest.raises(ExportError, match=message):
        detection_graph(model)


@pytest.mark.parametrize('kind', segmentors.KINDS)
@pytest.mark.parametrize('pattern', list(PRESENCE))
def test_segmentation_graph_gives_mmsegs_logits(kind, pattern):
    model = segmentors.build(segmentors.model_cfg(kind)).eval()
    presence = PRESENCE[pattern]
    inputs, samples = segmentors.batch()
    metas = [dict(s.metainfo) for s in samples]
    for meta, row in zip(metas, presence or [[True, True]] * 2):
        meta['missing_modalities'] = [
            n for n, here in zip(['rgb', 'thermal'], row) if not here
        ]
    graph = SegmentationGraph(model, with_logits=True).eval()
    mask = torch.ones(2, 2, dtype=torch.bool) if presence is None else \
        torch.tensor(presence)
    with torch.no_grad():
        want = model.encode_decode(inputs, metas)
        seg_map, logits = graph(inputs, mask)
    assert torch.allclose(logits, want, atol=1e-6)
    assert torch.equal(seg_map, want.argmax(dim=1))


def test_what_the_graph_cannot_express_is_refused_by_name():
    model = segmentors.build(segmentors.model_cfg(segmentors.DEEPLAB)).eval()
    model.test_cfg = dict(mode='slide', crop_size=(32, 32), stride=(16, 16))
    with pytest.raises(ExportError, match=r"test_cfg.mode is 'slide'.*mode='whole'"):
        SegmentationGraph(model)
    retina = detectors.build(
        detectors.retina_cfg(
            backbone=dict(
                type='DualStreamBackbone',
                backbone=dict(
                    type='ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3)),
                missing_substitute=dict(type='CrossModalProxy')))).eval()
    with pytest.raises(ExportError, match='CrossModalProxy.*--no-presence'):
        detection_graph(retina)
    detection_graph(retina, with_presence=False)  # a blank camera still works
