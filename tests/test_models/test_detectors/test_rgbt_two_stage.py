"""RGBTTwoStageDetector: per-modality scores of the sampled RoIs and
predictions on given (or the RPN's) proposals for BTW, against independent
computations."""
import torch
from mmdet.structures.bbox import bbox2roi
from mmengine.structures import InstanceData

from tests.helpers.detectors import (NUM_CLASSES, batch, build, frcnn_cfg, iou,
                                     losses_by_source, preprocess)

# -- scores against an independent computation ----------------------------------


def test_two_stage_scores_are_the_sampled_rois_label_probabilities():
    """With a sampler that keeps every RoI, the units are the RPN's proposals
    plus the ground truth, labelled by IoU >= 0.5 (else background)."""
    model = build(
        frcnn_cfg(
            all_rois=True,
            aux_loss_weight=1.0,
            backbone=dict(fusion=dict(type='AddFusion'))))
    data = batch()
    got = losses_by_source(model, data)
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


# -- predictions for BTW -------------------------------------------------------------


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
