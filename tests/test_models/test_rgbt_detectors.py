"""RGB-T detectors: stock behaviour by default, per-modality scores and
predictions, RSC's auxiliary heads, modality decoupling, the backbone's extra
losses and ignored modalities, on tiny RetinaNet and Faster R-CNN models built
from the real base configs."""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData

import mwam_mm  # noqa: F401
from mwam_mm.models import RGBTSingleStageDetector, RGBTTwoStageDetector
from tests.conftest import ROOT
from tests.helpers.detection import detection_batch
from tests.helpers.presence import with_missing

RETINA = 'configs/_base_/models/retinanet_dual-r18_fpn.py'
FRCNN = 'configs/_base_/models/faster-rcnn_dual-r18_fpn.py'
NUM_CLASSES = 2


def retina_cfg(**model):
    cfg = Config.fromfile(f'{ROOT}/{RETINA}').model
    cfg.backbone.backbone.base_channels = 8
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.bbox_head.update(
        num_classes=NUM_CLASSES, in_channels=16, feat_channels=16, stacked_convs=1)
    cfg.update(model)
    return cfg


def frcnn_cfg(all_rois=False, **model):
    """Tiny Faster R-CNN; ``all_rois``: the RoI sampler keeps every proposal
    (and the test-time RPN gives the training proposals), so the sampled RoIs
    can be recomputed by hand."""
    cfg = Config.fromfile(f'{ROOT}/{FRCNN}').model
    cfg.backbone.backbone.base_channels = 8
    cfg.neck.update(in_channels=[8, 16, 32, 64], out_channels=16)
    cfg.rpn_head.update(in_channels=16, feat_channels=16)
    cfg.roi_head.bbox_roi_extractor.out_channels = 16
    cfg.roi_head.bbox_head.update(
        in_channels=16, fc_out_channels=32, num_classes=NUM_CLASSES)
    cfg.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=60)
    cfg.train_cfg.rcnn.sampler.num = 64
    cfg.test_cfg.rpn.update(nms_pre=200, max_per_img=60)
    if all_rois:
        cfg.train_cfg.rcnn.sampler.num = 10**6
        cfg.test_cfg.rpn = copy.deepcopy(cfg.train_cfg.rpn_proposal)
    cfg.update(model)
    return cfg


CONFIGS = {'retinanet': retina_cfg, 'faster-rcnn': frcnn_cfg}
STOCK = {'retinanet': 'RetinaNet', 'faster-rcnn': 'FasterRCNN'}


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(copy.deepcopy(cfg))


def batch(num=2, seed=0):
    return detection_batch(num, seed)


def preprocess(model, data, training=True):
    return model.data_preprocessor(copy.deepcopy(data), training)


def run_loss(model, data, seed=0):
    torch.manual_seed(seed)  # Faster R-CNN samples proposals at random
    return model(**preprocess(model, data), mode='loss')


def total(losses, keep=lambda key: True):
    """The sum of the selected loss entries, as mmengine's parse_losses sums."""
    values = []
    for key, value in losses.items():
        if 'loss' in key and keep(key):
            values += list(value) if isinstance(value, (list, tuple)) else [value]
    return sum(v.mean() for v in values)


def is_aux(key):
    return key.endswith('_rgb') or key.endswith('_thermal')


def same_losses(a, b, keys):
    for key in keys:
        torch.testing.assert_close(total({key: a[key]}), total({key: b[key]}))


def iou(a, b):
    """IoU of every box in ``a`` (G, 4) with every box in ``b`` (A, 4), as
    mmdet computes it (no +1, eps 1e-6)."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    overlap = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = (area_a[:, None] + area_b[None] - overlap).clamp(min=1e-6)
    return overlap / union


def retina_positive_labels(anchors, gt):
    """RetinaNet's MaxIoUAssigner (pos 0.5, neg 0.4, min_pos_iou 0, every
    anchor at a gt's highest IoU also assigned to it): each anchor's class, or
    -1 when not positive."""
    overlaps = iou(gt.bboxes, anchors)
    best, owner = overlaps.max(dim=0)
    assigned = torch.where(best >= 0.5, owner, torch.full_like(owner, -1))
    for i in range(len(gt.bboxes)):
        assigned[overlaps[i] == overlaps[i].max()] = i
    return torch.where(assigned >= 0, gt.labels[assigned.clamp(min=0)],
                       torch.full_like(assigned, -1))


def flat_logits(cls_scores, i):
    return torch.cat(
        [c[i].permute(1, 2, 0).reshape(-1, NUM_CLASSES) for c in cls_scores])


# -- the configs and stock behaviour --------------------------------------------


def test_the_base_configs_use_the_rgbt_types():
    assert Config.fromfile(f'{ROOT}/{RETINA}').model.type == 'RGBTSingleStageDetector'
    assert Config.fromfile(f'{ROOT}/{FRCNN}').model.type == 'RGBTTwoStageDetector'


@pytest.mark.parametrize('family', list(CONFIGS))
def test_defaults_are_the_stock_detector(family):
    cfg = CONFIGS[family]()
    ours = build(cfg)
    stock = build(dict(cfg, type=STOCK[family]))
    stock.load_state_dict(ours.state_dict())
    assert set(ours.state_dict()) == set(stock.state_dict())
    assert not ours.has_modality_heads() and ours.aux_heads is None
    data = batch()
    a, b = run_loss(ours, data), run_loss(stock, data)
    assert set(a) == set(b)
    same_losses(a, b, a)
    ours.eval()
    stock.eval()
    pred_a, pred_b = ours.test_step(data), stock.test_step(data)
    for x, y in zip(pred_a, pred_b):
        torch.testing.assert_close(x.pred_instances.bboxes, y.pred_instances.bboxes)
        torch.testing.assert_close(x.pred_instances.scores, y.pred_instances.scores)


@pytest.mark.parametrize('family', list(CONFIGS))
def test_scores_change_neither_the_fused_losses_nor_norm_statistics(family):
    """The scores' own path (streams kept, unimodal views) gives the stock
    losses, and the views leave the fusion's BN running statistics alone."""
    plain = build(CONFIGS[family]())  # ConcatConvFusion: BN in the fusion
    scored = copy.deepcopy(plain)
    scored.modality_scores_source = 'view'
    data = batch()
    a, b = run_loss(plain, data), run_loss(scored, data)
    assert set(b) - set(a) == {
        f'modality_{kind}_{m}'
        for kind in ('score', 'count')
        for m in ('rgb', 'thermal')
    }
    same_losses(a, b, a)
    assert not any(b[k].requires_grad for k in b if k.startswith('modality_'))
    assert all(b[k].dim() == 0 for k in b if k.startswith('modality_'))
    for key, value in plain.state_dict().items():
        if 'running' in key or 'num_batches' in key:
            torch.testing.assert_close(scored.state_dict()[key], value, msg=key)
    # the auxiliary path leaves the fused losses alone too
    aux = build(CONFIGS[family](aux_loss_weight=1.0))
    reference = build(CONFIGS[family]())
    reference.load_state_dict(aux.state_dict(), strict=False)
    a, b = run_loss(reference, data), run_loss(aux, data)
    same_losses(a, b, a)


# -- scores against an independent computation ----------------------------------


@pytest.mark.parametrize('aux_heads', ['separate', 'shared'])
def test_single_stage_scores_are_the_positive_anchors_gt_probabilities(aux_heads):
    # AddFusion: the unimodal view is the stream's own feature (the other is 0)
    model = build(
        retina_cfg(
            aux_loss_weight=1.0,
            aux_heads=aux_heads,
            backbone=dict(fusion=dict(type='AddFusion'))))
    data = batch()
    got = {}
    for source in ('aux', 'view'):
        model.modality_scores_source = source
        got[source] = run_loss(model, data)
    inputs = preprocess(model, data)['inputs']
    with torch.no_grad():
        streams = model.backbone.forward_streams(inputs)
    for m in ('rgb', 'thermal'):
        for source in ('aux', 'view'):
            head = model.aux_heads[m] if (source == 'aux'
                                          and aux_heads == 'separate') else \
                model.bbox_head
            with torch.no_grad():
                cls_scores = head(model.neck(streams[m]))[0]
            anchors = torch.cat(
                model.bbox_head.prior_generator.grid_priors(
                    [c.shape[-2:] for c in cls_scores], device='cpu'))
            score, count = 0.0, 0
            for i, sample in enumerate(data['data_samples']):
                labels = retina_positive_labels(anchors, sample.gt_instances)
                positive = labels >= 0
                logits = flat_logits(cls_scores, i)[positive]
                score += logits.gather(1, labels[positive][:, None]).sigmoid().sum()
                count += int(positive.sum())
            assert count > 0
            assert got[source][f'modality_count_{m}'].item() == count
            torch.testing.assert_close(got[source][f'modality_score_{m}'],
                                       torch.as_tensor(score))
    if aux_heads == 'shared':  # the shared head on f_m is the AddFusion view
        for key in got['aux']:
            if key.startswith('modality_'):
                torch.testing.assert_close(got['aux'][key], got['view'][key])


def test_two_stage_scores_are_the_sampled_rois_label_probabilities():
    """With a sampler that keeps every RoI, the units are the RPN's proposals
    plus the ground truth, labelled by IoU >= 0.5 (else background)."""
    model = build(
        frcnn_cfg(
            all_rois=True,
            aux_loss_weight=1.0,
            backbone=dict(fusion=dict(type='AddFusion'))))
    data = batch()
    got = {}
    for source in ('aux', 'view'):
        model.modality_scores_source = source
        got[source] = run_loss(model, data)
    prepared = preprocess(model, data)
    inputs, samples = prepared['inputs'], prepared['data_samples']
    with torch.no_grad():
        streams = model.backbone.forward_streams(inputs)
        proposals = model.rpn_head.predict(
            model.neck(model.backbone(inputs)), samples, rescale=False)
    units, labels = [], []
    for sample, prop in zip(samples, proposals):
        gt = sample.gt_instances
        boxes = torch.cat([gt.bboxes, prop.bboxes])
        best, owner = iou(gt.bboxes, boxes).max(dim=0)
        labels.append(torch.where(best >= 0.5, gt.labels[owner], NUM_CLASSES))
        units.append(boxes)
    rois, labels = bbox2roi(units), torch.cat(labels)
    assert 0 < int((labels < NUM_CLASSES).sum()) < len(labels)
    extractor = model.roi_head.bbox_roi_extractor
    for m in ('rgb', 'thermal'):
        for source, head in (('aux', model.aux_heads[m]), ('view',
                                                           model.roi_head.bbox_head)):
            with torch.no_grad():
                feats = model.neck(streams[m])
                cls_score = head(extractor(feats[:extractor.num_inputs], rois))[0]
            probs = cls_score.softmax(-1).gather(1, labels[:, None])
            assert got[source][f'modality_count_{m}'].item() == len(labels)
            torch.testing.assert_close(got[source][f'modality_score_{m}'], probs.sum())


# -- modality decoupling: gradients reaching the streams ----------------------


def stream_grads(model, data, keep):
    model.zero_grad()
    total(run_loss(model, data), keep).backward()
    return {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in model.backbone.streams.named_parameters()
    }


def assert_same_grad(got, expected, name):
    """Equal up to float32 summation order (the two sides add the same terms
    in another order): relative difference of the norms below 1e-5."""
    error = (got - expected).norm().item()
    assert error <= 1e-5 * max(expected.norm().item(), 1e-12), (name, error)


@pytest.mark.parametrize('family,aux_heads', [('retinanet', 'separate'),
                                              ('retinanet', 'shared'),
                                              ('faster-rcnn', 'separate')])
def test_fused_grad_scale_decouples_the_streams_from_the_fusion(family, aux_heads):
    model = build(CONFIGS[family](aux_loss_weight=1.0, aux_heads=aux_heads))
    data = batch()
    model.backbone.fused_grad_scale = 0.0
    decoupled = stream_grads(model, data, lambda key: True)
    aux_only = stream_grads(model, data, is_aux)
    fused_only = stream_grads(model, data, lambda key: not is_aux(key))
    assert all(g.abs().sum() == 0 for g in fused_only.values())
    assert any(g.abs().sum() > 0 for g in aux_only.values())
    for name, grad in decoupled.items():
        assert_same_grad(grad, aux_only[name], name)
    model.backbone.fused_grad_scale = 1.0
    coupled = stream_grads(model, data, lambda key: True)
    fused_only = stream_grads(model, data, lambda key: not is_aux(key))
    assert any(g.abs().sum() > 0 for g in fused_only.values())
    for name, grad in coupled.items():
        assert_same_grad(grad, fused_only[name] + aux_only[name], name)
    # in between, every stream parameter (the stem of a 4-level ResNet too, whose
    # gradient passes every level) gets exactly beta times the fused gradient: the
    # scale sits where the features leave the stream for the fusion, once a level
    model.backbone.fused_grad_scale = 0.5
    half = stream_grads(model, data, lambda key: True)
    for name, grad in half.items():
        assert_same_grad(grad, 0.5 * fused_only[name] + aux_only[name], name)


# -- auxiliary heads --------------------------------------------------------------


@pytest.mark.parametrize('family', list(CONFIGS))
def test_aux_losses_are_named_per_modality_and_scaled(family):
    model = build(CONFIGS[family](aux_loss_weight=1.0))
    data = batch()
    full = run_loss(model, data)
    stock = {
        'retinanet': ['loss_cls', 'loss_bbox'],
        'faster-rcnn': ['loss_cls', 'loss_bbox', 'acc']
    }[family]
    for m in ('rgb', 'thermal'):
        assert {f'{k}_{m}' for k in stock} <= set(full)
    model.aux_loss_weight = 0.5
    half = run_loss(model, data)
    for key in full:
        if is_aux(key) and 'loss' in key:
            torch.testing.assert_close(
                total({key: half[key]}),
                total({key: full[key]}) * 0.5)
        else:  # fused losses and accuracies unscaled
            torch.testing.assert_close(
                total({'loss': half[key]}), total({'loss': full[key]}))


@pytest.mark.parametrize('family', list(CONFIGS))
def test_shared_heads_add_no_parameters_separate_ones_a_head_each(family):

    def count(module):
        return sum(p.numel() for p in module.parameters())

    plain = build(CONFIGS[family]())
    shared = build(CONFIGS[family](aux_loss_weight=1.0, aux_heads='shared'))
    separate = build(CONFIGS[family](aux_loss_weight=1.0))
    head = plain.bbox_head if family == 'retinanet' else plain.roi_head.bbox_head
    assert shared.aux_heads is None and shared.has_modality_heads()
    assert list(separate.aux_heads) == ['rgb', 'thermal']
    assert count(shared) == count(plain)
    assert count(separate) == count(plain) + 2 * count(head)


@pytest.mark.parametrize('family', list(CONFIGS))
def test_aux_heads_are_not_used_at_test_time(family):
    model = build(CONFIGS[family](aux_loss_weight=1.0))
    plain = build(CONFIGS[family]())
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all(k.startswith('aux_heads.') for k in unexpected)

    def refuse(*args, **kwargs):
        raise AssertionError('an auxiliary head ran at test time')

    for head in model.aux_heads.values():
        head.forward = refuse
    model.eval()
    plain.eval()
    data = batch()
    for ours, theirs in zip(model.test_step(data), plain.test_step(data)):
        torch.testing.assert_close(ours.pred_instances.bboxes,
                                   theirs.pred_instances.bboxes)
        torch.testing.assert_close(ours.pred_instances.scores,
                                   theirs.pred_instances.scores)
    prepared = preprocess(model, data, training=False)
    model(**prepared, mode='tensor')
    with pytest.raises(AssertionError, match='auxiliary head ran'):
        model.modality_predictions(
            prepared['inputs'], prepared['data_samples'], source='aux')


# -- predictions for BTW -------------------------------------------------------------


def test_single_stage_predictions_are_the_top_fused_anchors():
    model = build(
        retina_cfg(aux_loss_weight=1.0, backbone=dict(fusion=dict(type='AddFusion'))))
    model.init_weights()  # RetinaNet's prior bias: confident background
    model.eval()
    data = batch()
    prepared = preprocess(model, data, training=False)
    inputs = prepared['inputs']
    top_k = 7
    preds = model.modality_predictions(inputs, prepared['data_samples'], 'view', top_k)
    aux = model.modality_predictions(inputs, prepared['data_samples'], 'aux', top_k)
    assert set(preds) == set(aux) == {'fused', 'rgb', 'thermal'}
    with torch.no_grad():
        streams = model.backbone.forward_streams(inputs)
        logits = {
            'fused': model.bbox_head(model.neck(model.backbone(inputs)))[0],
            'rgb': model.bbox_head(model.neck(streams['rgb']))[0],
            'thermal': model.bbox_head(model.neck(streams['thermal']))[0],
        }
        aux_logits = model.aux_heads['rgb'](model.neck(streams['rgb']))[0]
    for i in range(2):
        fused = flat_logits(logits['fused'], i).sigmoid()
        order = fused.max(dim=1).values.topk(top_k).indices
        for key, source_logits in list(logits.items()) + [('aux', aux_logits)]:
            p = flat_logits(source_logits, i)[order].sigmoid()
            rows = torch.cat([p, (1 - p).prod(dim=1, keepdim=True)], dim=1)
            expected = rows / rows.sum(dim=1, keepdim=True)
            got = aux['rgb'][i] if key == 'aux' else preds[key][i]
            assert got.shape == (top_k, NUM_CLASSES + 1)
            torch.testing.assert_close(got, expected)
            torch.testing.assert_close(got.sum(dim=1), torch.ones(top_k))
    everything = model.modality_predictions(inputs, prepared['data_samples'], 'view',
                                            10**6)
    assert everything['fused'][0].shape[0] == flat_logits(logits['fused'], 0).shape[0]


def test_two_stage_predictions_score_the_given_proposals_by_fused_confidence():
    model = build(frcnn_cfg(backbone=dict(fusion=dict(type='AddFusion'))))
    model.eval()
    prepared = preprocess(model, batch(), training=False)
    inputs, samples = prepared['inputs'], prepared['data_samples']
    g = torch.Generator().manual_seed(1)
    for sample in samples:
        xy = torch.rand(9, 2, generator=g) * 40
        sample.proposals = InstanceData(
            bboxes=torch.cat([xy, xy + 8 + torch.rand(9, 2, generator=g) * 16], 1))
    rois = bbox2roi([s.proposals.bboxes for s in samples])
    preds = model.modality_predictions(inputs, samples, 'view', top_k=5)
    head, extractor = model.roi_head.bbox_head, model.roi_head.bbox_roi_extractor
    with torch.no_grad():
        streams = model.backbone.forward_streams(inputs)
        feats = {
            'fused': model.neck(model.backbone(inputs)),
            'rgb': model.neck(streams['rgb']),
            'thermal': model.neck(streams['thermal'])
        }
        probs = {
            k: head(extractor(f[:extractor.num_inputs], rois))[0].softmax(-1)
            for k, f in feats.items()
        }
    for i in range(2):
        index = torch.nonzero(rois[:, 0] == i).squeeze(1)
        order = index[probs['fused'][index, :NUM_CLASSES].max(1).values.topk(5).indices]
        for key in ('fused', 'rgb', 'thermal'):
            assert preds[key][i].shape == (5, NUM_CLASSES + 1)
            torch.testing.assert_close(preds[key][i], probs[key][order])
    # without proposals: the RPN's, at most top_k per image, rows summing to 1
    for sample in samples:
        del sample.proposals
    preds = model.modality_predictions(inputs, samples, 'view', top_k=4)
    for rows in preds['thermal']:
        assert rows.shape == (4, NUM_CLASSES + 1)
        torch.testing.assert_close(rows.sum(1), torch.ones(4))


# -- the backbone's extra losses and ignored modalities -----------------------------


class LossSubstitute(nn.Module):
    """Zeros for a missing modality, and a loss on the features it is shown (a
    learned proxy's alignment loss stands in)."""

    def __init__(self):
        super().__init__()
        self.presences = []

    def forward(self, outs, presence):
        missing = (~presence).any(dim=0).tolist()
        return {
            name: tuple(torch.zeros_like(level) for level in levels)
            for (name, levels), gone in zip(outs.items(), missing) if gone
        }

    def loss(self, outs, presence):
        self.presences.append(presence)
        return dict(loss_align=sum(level.mean() for level in outs['thermal']))


@pytest.mark.parametrize('family', list(CONFIGS))
@pytest.mark.parametrize('aux,source', [(0.0, None), (1.0, None), (1.0, 'view')])
def test_the_backbones_extra_losses_are_added(family, aux, source):
    model = build(CONFIGS[family](aux_loss_weight=aux))
    model.backbone.missing_substitute = LossSubstitute()
    model.modality_scores_source = source
    data = batch()
    losses = run_loss(model, data)
    # the training forward's loss, with gradient: not the views' (no gradient)
    assert losses['loss_align'].requires_grad
    with torch.no_grad():
        streams = model.backbone.forward_streams(preprocess(model, data)['inputs'])
    torch.testing.assert_close(losses['loss_align'],
                               sum(level.mean() for level in streams['thermal']))


@pytest.mark.parametrize('family', list(CONFIGS))
def test_ignored_modality_through_a_detector(family):
    model = build(CONFIGS[family](
        aux_loss_weight=1.0, backbone=dict(ignore_modalities=['thermal'])))
    assert list(model.backbone.streams) == ['rgb']
    assert list(model.aux_heads) == ['rgb']
    model.modality_scores_source = 'view'
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    data = batch()
    torch.manual_seed(0)
    log_vars = model.train_step(copy.deepcopy(data), optim)
    assert torch.isfinite(log_vars['loss'])
    assert {'loss_cls_rgb', 'modality_score_rgb', 'modality_count_rgb'} <= set(log_vars)
    assert not [k for k in log_vars if 'thermal' in k]
    model.eval()
    preds = model.test_step(copy.deepcopy(data))
    other = copy.deepcopy(data)  # another thermal image: nothing changes
    for image in other['inputs']:
        image[3] = 255 - image[3]
    for ours, theirs in zip(preds, model.test_step(other)):
        assert len(ours.pred_instances) > 0
        torch.testing.assert_close(ours.pred_instances.bboxes,
                                   theirs.pred_instances.bboxes)
        torch.testing.assert_close(ours.pred_instances.scores,
                                   theirs.pred_instances.scores)
    prepared = preprocess(model, data, training=False)
    preds = model.modality_predictions(prepared['inputs'], prepared['data_samples'])
    assert set(preds) == {'fused', 'rgb'}


# -- other heads and bad arguments -------------------------------------------------


def test_a_head_without_anchor_targets_trains_with_aux_heads_but_gives_no_scores():
    cfg = retina_cfg(aux_loss_weight=1.0)
    cfg.bbox_head = dict(
        type='FCOSHead',
        num_classes=NUM_CLASSES,
        in_channels=16,
        feat_channels=16,
        stacked_convs=1,
        norm_cfg=None,
        strides=[8, 16, 32, 64, 128])
    model = build(cfg)
    losses = run_loss(model, batch())
    assert {'loss_centerness', 'loss_centerness_rgb', 'loss_cls_thermal'} <= set(losses)
    model.modality_scores_source = 'aux'
    with pytest.raises(TypeError, match='FCOSHead is not one'):
        run_loss(model, batch())


@pytest.mark.parametrize('family', list(CONFIGS))
def test_bad_arguments_are_named(family):
    cfg = CONFIGS[family]
    for weight in (-1.0, float('nan'), True, '1'):
        with pytest.raises(
                ValueError,
                match=r'aux_loss_weight must be a finite '
                rf'number >= 0.*got {weight!r}'):
            build(cfg(aux_loss_weight=weight))
    with pytest.raises(ValueError, match=r"aux_heads='both' is not one of"):
        build(cfg(aux_loss_weight=1.0, aux_heads='both'))
    plain_backbone = cfg(aux_loss_weight=1.0)
    plain_backbone.backbone = dict(
        type='ResNet', depth=18, base_channels=8, in_channels=4)
    with pytest.raises(TypeError, match='per-modality streams.*ResNet has no'):
        build(plain_backbone)
    model = build(cfg())
    data = batch()
    model.modality_scores_source = 'aux'
    with pytest.raises(ValueError, match="source='aux' needs auxiliary"):
        run_loss(model, data)
    model.modality_scores_source = 'best'
    with pytest.raises(ValueError, match="unknown source 'best'"):
        run_loss(model, data)
    model.modality_scores_source = 'auto'  # resolved: 'view' without aux heads
    assert 'modality_score_rgb' in run_loss(model, data)
    model.modality_scores_source = None
    prepared = preprocess(model, data, training=False)
    with pytest.raises(ValueError, match='top_k must be an int >= 1, got 0'):
        model.modality_predictions(
            prepared['inputs'], prepared['data_samples'], 'view', top_k=0)
    assert isinstance(model, (RGBTSingleStageDetector, RGBTTwoStageDetector))


def test_aux_input_view_trains_the_shared_head_on_each_missing_modality_view():
    """aux_input='view': each modality's auxiliary loss is the detector's own loss
    with the other modality known missing (computed here by the plain detector
    with the same weights and the other modality marked missing on its samples)."""
    model = build(retina_cfg(aux_loss_weight=1.0, aux_heads='shared', aux_input='view'))
    plain = build(retina_cfg())
    plain.load_state_dict(model.state_dict())  # shared heads: no extra weights
    model.train()
    plain.train()
    data = batch()
    losses = run_loss(model, data)
    inputs = preprocess(plain, data)
    for index, name in enumerate(['rgb', 'thermal']):
        only = torch.zeros(2, 2, dtype=torch.bool)
        only[:, index] = True
        expected = plain(
            inputs['inputs'], with_missing(inputs['data_samples'], only), mode='loss')
        for key in ('loss_cls', 'loss_bbox'):
            torch.testing.assert_close(
                total({key: losses[f'{key}_{name}']}), total({key: expected[key]}))
    # and the fused losses are the plain detector's
    fused = plain(**preprocess(plain, data), mode='loss')
    same_losses(losses, fused, ['loss_cls', 'loss_bbox'])
    with pytest.raises(ValueError, match="aux_input must be 'stream' or 'view'"):
        build(retina_cfg(aux_loss_weight=1.0, aux_input='fused'))


def test_aux_input_view_predictions_read_what_the_aux_heads_were_trained_on():
    # a shared head on each view: its 'aux' predictions are the 'view' ones
    model = build(retina_cfg(aux_loss_weight=1.0, aux_heads='shared', aux_input='view'))
    model.eval()
    prepared = preprocess(model, batch(), training=False)
    args = (prepared['inputs'], prepared['data_samples'])
    aux = model.modality_predictions(*args, 'aux', 7)
    view = model.modality_predictions(*args, 'view', 7)
    for key in ('fused', 'rgb', 'thermal'):
        for got, want in zip(aux[key], view[key]):
            torch.testing.assert_close(got, want)


def leaves(outputs) -> list:
    """The tensors of nested tuples and lists, in order."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for item in outputs for t in leaves(item)]


@pytest.mark.parametrize('family', list(CONFIGS))
def test_each_batch_carries_its_own_missing_marks(family):
    """The modality state rides on the batch's samples: preprocessing another
    batch in between (a second loader, a BTW pass, a thread) changes nothing."""
    model = build(CONFIGS[family]())
    model.eval()
    first = batch(seed=1)
    first['data_samples'][0].set_metainfo(dict(missing_modalities=['thermal']))
    data = preprocess(model, first, training=False)
    alone = leaves(model(**copy.deepcopy(data), mode='tensor'))
    other = preprocess(model, batch(seed=2), training=False)  # all present
    model(**other, mode='tensor')
    again = leaves(model(**copy.deepcopy(data), mode='tensor'))
    assert len(alone) == len(again) > 0
    assert all(torch.equal(a, b) for a, b in zip(alone, again))
    unmarked = copy.deepcopy(data)
    unmarked['data_samples'][0].set_metainfo(dict(missing_modalities=[]))
    plain = leaves(model(**unmarked, mode='tensor'))
    assert not all(torch.equal(a, b) for a, b in zip(alone, plain))
