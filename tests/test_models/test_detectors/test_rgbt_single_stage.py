"""RGBTSingleStageDetector: per-modality scores of the positive anchors and
top-anchor predictions for BTW, against independent computations; a head
without anchor targets; the shared head on each missing-modality view
(aux_input='view')."""
import pytest
import torch

from tests.helpers.detectors import (NUM_CLASSES, batch, build, iou, losses_by_source,
                                     preprocess, retina_cfg, run_loss, same_losses,
                                     total)
from tests.helpers.presence import with_missing


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
    got = losses_by_source(model, data)
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


# -- other heads and aux_input -----------------------------------------------------


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
