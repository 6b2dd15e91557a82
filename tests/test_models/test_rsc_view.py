"""rsc-view (aux_input='view') for every model family: the two-stage detector's
box head and the segmentor's decode head, shared, also trained on each
modality's unimodal view (the fusion's output with only that modality present),
against the model's own loss on a batch with the other modality marked missing;
the gradient that reaches the fusion; the predictions of source='aux'; and the
checks the three classes share (ModalityOutputsMixin)."""
import logging
import re

import pytest
import torch
from mmengine.structures import InstanceData

from mwam_mm.models import modality_outputs
from tests.helpers import detectors as det
from tests.helpers import segmentors as seg
from tests.helpers.presence import with_missing

MODALITIES = ('rgb', 'thermal')
SHARED_VIEW = dict(aux_loss_weight=1.0, aux_heads='shared', aux_input='view')


def only(index, num=2):
    """A ``(num, 2)`` presence mask with only modality ``index`` present."""
    mask = torch.zeros(num, 2, dtype=torch.bool)
    mask[:, index] = True
    return mask


def fusion_grads(model, loss):
    """The non-zero gradients of ``loss`` w.r.t. the fusion modules' parameters."""
    params = list(model.backbone.fusions.parameters())
    assert params  # ConcatConvFusion: a 1x1 conv + BN per level
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [g for g in grads if g is not None and g.abs().sum() > 0]


# -- two-stage: the box head on the view's features of the fused RoIs ----------
def frcnn(**options):
    # ConcatConvFusion (the config's): the view is not the stream's own feature
    return det.build(det.frcnn_cfg(all_rois=True, **options))


def frcnn_twins():
    """A 'view' and a 'stream' detector with shared heads and the same weights,
    and the plain detector with them too (shared heads: no extra weights)."""
    view = frcnn(**SHARED_VIEW)
    stream = frcnn(**dict(SHARED_VIEW, aux_input='stream'))
    plain = frcnn()
    assert set(view.state_dict()) == set(stream.state_dict()) == set(plain.state_dict())
    stream.load_state_dict(view.state_dict())
    plain.load_state_dict(view.state_dict())
    for model in (view, stream, plain):
        model.train()
    return view, stream, plain


def frcnn_reference(plain, prepared, index):
    """The RoI head's own losses on the fused features of the batch with only
    modality ``index`` marked present, for the fused path's proposals of the
    full batch (the sampler keeps every RoI: the same units as the aux loss)."""
    inputs, samples = prepared['inputs'], prepared['data_samples']
    proposals = plain.rpn_head.predict(
        plain.extract_feat(inputs, samples), samples, rescale=False)
    feats = plain.extract_feat(inputs, with_missing(samples, only(index)))
    torch.manual_seed(0)
    return plain.roi_head.loss(feats, proposals, samples)


def test_two_stage_view_aux_losses_are_the_box_heads_loss_on_each_view():
    view, stream, plain = frcnn_twins()
    data = det.batch()
    losses = det.run_loss(view, data)
    stream_losses = det.run_loss(stream, data)
    for key in ('loss_cls', 'loss_bbox', 'acc'):
        assert {f'{key}_rgb', f'{key}_thermal'} <= set(losses)
    prepared = det.preprocess(plain, data)
    for index, m in enumerate(MODALITIES):
        expected = frcnn_reference(plain, prepared, index)
        for key in ('loss_cls', 'loss_bbox', 'acc'):
            torch.testing.assert_close(losses[f'{key}_{m}'], expected[key])
        assert not torch.allclose(losses[f'loss_cls_{m}'],
                                  stream_losses[f'loss_cls_{m}'])
    # the fused path is the plain detector's (the RPN's loss samples at random)
    fused = det.run_loss(plain, data)
    det.same_losses(losses, fused, ['loss_cls', 'loss_bbox', 'loss_rpn_cls'])


def test_two_stage_view_aux_loss_trains_the_fusion_and_stream_does_not():
    view, stream, _ = frcnn_twins()
    data = det.batch()
    got = det.run_loss(view, data)
    assert fusion_grads(view, got['loss_cls_rgb'])
    assert fusion_grads(view, got['loss_bbox_thermal'])
    got = det.run_loss(stream, data)
    assert fusion_grads(stream, got['loss_cls_rgb']) == []
    assert fusion_grads(stream, got['loss_bbox_thermal']) == []


def test_two_stage_aux_predictions_read_the_view():
    view, stream, _ = frcnn_twins()
    preds = {}
    for name, model in (('view', view), ('stream', stream)):
        model.eval()
        prepared = det.preprocess(model, det.batch(), training=False)
        g = torch.Generator().manual_seed(1)
        for sample in prepared['data_samples']:
            xy = torch.rand(9, 2, generator=g) * 40
            sample.proposals = InstanceData(
                bboxes=torch.cat([xy, xy + 8 + torch.rand(9, 2, generator=g) * 16], 1))
        args = (prepared['inputs'], prepared['data_samples'])
        preds[name] = {
            s: model.modality_predictions(*args, s, 5)
            for s in ('aux', 'view')
        }
    for m in MODALITIES:  # a shared head on the view: 'aux' is 'view'
        for got, want in zip(preds['view']['aux'][m], preds['view']['view'][m]):
            torch.testing.assert_close(got, want)
    # with 'stream' it reads the stream's own features: other predictions
    assert not all(
        torch.allclose(got, want) for got, want in zip(preds['stream']['aux']['rgb'],
                                                       preds['view']['aux']['rgb']))


# -- segmentor: the decode head on each view ------------------------------------
def deeplab_twins():
    """DeepLabV3+ (ConcatConvFusion) with 'view' and 'stream' shared heads and
    the plain model, the same weights."""
    view = seg.build(seg.model_cfg(seg.DEEPLAB, **SHARED_VIEW))
    stream = seg.build(
        seg.model_cfg(seg.DEEPLAB, **dict(SHARED_VIEW, aux_input='stream')))
    plain = seg.build(seg.model_cfg(seg.DEEPLAB))
    assert set(view.state_dict()) == set(stream.state_dict()) == set(plain.state_dict())
    stream.load_state_dict(view.state_dict())
    plain.load_state_dict(view.state_dict())
    for model in (view, stream, plain):
        model.train()
    return view, stream, plain


def test_segmentor_view_aux_losses_are_the_decode_heads_loss_on_each_view():
    view, stream, plain = deeplab_twins()
    inputs, samples = seg.batch()
    losses = view.loss(inputs, samples)
    stream_losses = stream.loss(inputs, samples)
    assert {'aux.loss_ce_rgb', 'aux.loss_ce_thermal', 'aux.acc_seg_rgb'} <= set(losses)
    for index, m in enumerate(MODALITIES):
        # the plain model's decode loss with the other modality marked missing
        expected = plain.loss(inputs, with_missing(samples, only(index)))
        torch.testing.assert_close(losses[f'aux.loss_ce_{m}'],
                                   expected['decode.loss_ce'])
        torch.testing.assert_close(losses[f'aux.acc_seg_{m}'],
                                   expected['decode.acc_seg'])
        assert not torch.allclose(losses[f'aux.loss_ce_{m}'],
                                  stream_losses[f'aux.loss_ce_{m}'])
    fused = plain.loss(inputs, samples)
    for key in ('decode.loss_ce', 'aux.loss_ce'):  # mmseg's own, on the fused path
        torch.testing.assert_close(losses[key], fused[key])


def test_segmentor_view_aux_loss_trains_the_fusion_and_stream_does_not():
    view, stream, _ = deeplab_twins()
    inputs, samples = seg.batch()
    assert fusion_grads(view, view.loss(inputs, samples)['aux.loss_ce_rgb'])
    assert fusion_grads(stream, stream.loss(inputs, samples)['aux.loss_ce_rgb']) == []


def stream_grads(model, loss):
    """The non-zero gradients of ``loss`` w.r.t. the streams' parameters."""
    params = [p for n, p in model.backbone.named_parameters() if 'fusions' not in n]
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [g for g in grads if g is not None and g.abs().sum() > 0]


def test_segmentor_view_is_a_fused_forward_for_grad_scale_and_norm_statistics():
    # a view reaches the streams through the fusion: RSC-MD's decoupling (scale
    # 0) stops its gradient there, and a 'stream' head's gradient is untouched
    view, stream, plain = deeplab_twins()
    inputs, samples = seg.batch()
    assert stream_grads(view, view.loss(inputs, samples)['aux.loss_ce_rgb'])
    for model in (view, stream):
        model.backbone.set_fused_grad_scale(0.0)
    assert stream_grads(view, view.loss(inputs, samples)['aux.loss_ce_rgb']) == []
    assert stream_grads(stream, stream.loss(inputs, samples)['aux.loss_ce_rgb'])
    # each view is a training forward of the fusion's norm layers (not under
    # view_mode): one fused + one per modality, against the plain model's one
    bn_view = next(m for m in view.backbone.fusions.modules()
                   if isinstance(m, torch.nn.BatchNorm2d))
    bn_plain = next(m for m in plain.backbone.fusions.modules()
                    if isinstance(m, torch.nn.BatchNorm2d))
    before_view = int(bn_view.num_batches_tracked)
    before_plain = int(bn_plain.num_batches_tracked)
    view.loss(inputs, samples)
    plain.loss(inputs, samples)
    assert int(bn_plain.num_batches_tracked) - before_plain == 1
    assert int(bn_view.num_batches_tracked) - before_view == 1 + len(MODALITIES)


def test_segmentor_aux_predictions_read_the_view():
    view, stream, _ = deeplab_twins()
    inputs, samples = seg.batch(seed=2)
    preds = {}
    for name, model in (('view', view), ('stream', stream)):
        model.eval()
        preds[name] = {
            s: model.modality_predictions(inputs, samples, s, top_k=50)
            for s in ('aux', 'view')
        }
    for m in MODALITIES:
        for got, want in zip(preds['view']['aux'][m], preds['view']['view'][m]):
            torch.testing.assert_close(got, want)
    assert not all(
        torch.allclose(got, want) for got, want in zip(preds['stream']['aux']['rgb'],
                                                       preds['view']['aux']['rgb']))


# -- the option's checks, one for the three classes --------------------------------
FAMILIES = {
    'RGBTSingleStageDetector': lambda **o: det.build(det.retina_cfg(**o)),
    'RGBTTwoStageDetector': lambda **o: det.build(det.frcnn_cfg(**o)),
    'RGBTEncoderDecoder': lambda **o: seg.build(seg.model_cfg(seg.DEEPLAB, **o)),
}


@pytest.mark.parametrize('owner', list(FAMILIES))
def test_a_bad_aux_input_is_named(owner):
    message = f"{owner}: aux_input must be 'stream' or 'view', got 'fused'"
    with pytest.raises(ValueError, match=re.escape(message)):
        FAMILIES[owner](aux_loss_weight=1.0, aux_input='fused')
    with pytest.raises(ValueError, match=re.escape(message)):  # also unused
        FAMILIES[owner](aux_input='fused')


@pytest.mark.parametrize('owner', list(FAMILIES))
def test_the_default_is_stream_and_weight_zero_ignores_view_with_a_warning(
        owner, monkeypatch):
    logged = []
    monkeypatch.setattr(modality_outputs, 'print_log', lambda msg, **kw: logged.append(
        (msg, kw.get('level'))))
    assert FAMILIES[owner]().aux_input == 'stream'
    assert FAMILIES[owner](aux_loss_weight=1.0).aux_input == 'stream'
    assert logged == []
    model = FAMILIES[owner](aux_loss_weight=0, aux_heads='shared', aux_input='view')
    assert not model.has_modality_heads() and model.aux_heads is None
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    assert logged[0][0] == (
        f'{owner}: aux_loss_weight=0, so no auxiliary per-modality heads are '
        "built; aux_heads='shared' / aux_input='view' are ignored")
