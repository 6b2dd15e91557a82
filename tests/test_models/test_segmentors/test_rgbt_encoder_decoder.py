"""RGBTEncoderDecoder: mmseg's EncoderDecoder by default, auxiliary per-modality
heads (RSC), modality decoupling through the backbone, unimodal scores and
predictions against independent computations, and its errors."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead
from mmseg.structures import SegDataSample

from mwam_mm.engine import build_runner
from mwam_mm.models import RGBTEncoderDecoder
from mwam_mm.models.modality_outputs import view_mode
from tests.helpers.configs import shrink_pipelines, tiny_config
from tests.helpers.layouts import write_mfnet
from tests.helpers.presence import with_missing
from tests.helpers.segmentors import (DEEPLAB, FCN, KINDS, NUM_CLASSES, SEGFORMER, SIZE,
                                      AligningSubstitute, ClashingSubstitute,
                                      LossOverridingHead, base_model, batch, build,
                                      gt_probability_sum, is_aux, labels_of,
                                      mmseg_cross_entropy, model_cfg, shrink_model)


# ----------------------------------------------------------------- default path
@pytest.mark.parametrize('kind', KINDS)
def test_the_segmentation_model_bases_use_it(kind):
    # every config under configs/segmentation/ inherits one of the two
    assert base_model(kind).type == 'RGBTEncoderDecoder'


@pytest.mark.parametrize('kind', KINDS)
def test_default_options_are_mmseg_encoder_decoder(kind):
    # the configs' own dropout (0.1) and SegFormer's drop path: same random draws
    cfg = model_cfg(kind, dropout=0.1)
    ours = build(cfg)
    plain = build(dict(cfg, type='EncoderDecoder'))
    plain.load_state_dict(ours.state_dict())
    assert type(plain).__name__ == 'EncoderDecoder'
    assert not ours.has_modality_heads() and ours.modality_aux_head is None
    assert sum(p.numel() for p in ours.parameters()) == \
        sum(p.numel() for p in plain.parameters())
    inputs, samples = batch()
    for model in (ours, plain):
        model.train()
    torch.manual_seed(1)
    a = ours.loss(inputs, samples)
    torch.manual_seed(1)
    b = plain.loss(inputs, samples)
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for model in (ours, plain):
        model.eval()
    pa, pb = ours.predict(inputs, samples), plain.predict(inputs, samples)
    for x, y in zip(pa, pb):
        assert torch.equal(x.seg_logits.data, y.seg_logits.data)


# -------------------------------------------------------------- auxiliary heads
@pytest.mark.parametrize('kind', KINDS)
def test_separate_heads_losses_on_each_streams_own_features(kind):
    cfg = model_cfg(kind, aux_loss_weight=0.5)
    model = build(cfg)
    twin = copy.deepcopy(model)  # the same state, for the independent path
    plain = build(dict(model_cfg(kind), type='EncoderDecoder'))
    plain.load_state_dict(model.state_dict(), strict=False)
    heads = model.modality_aux_head
    assert list(heads) == ['rgb', 'thermal'] and model.has_modality_heads()
    # default: a copy of decode_head's config, one new head per modality
    assert type(heads['rgb']) is type(model.decode_head)
    own = {id(p) for p in model.decode_head.parameters()}
    for head in heads.values():
        assert not own & {id(p) for p in head.parameters()}
    assert heads['rgb'].conv_seg.weight is not heads['thermal'].conv_seg.weight

    inputs, samples = batch()
    model.train(), twin.train(), plain.train()
    torch.manual_seed(1)
    losses = model.loss(inputs, samples)
    fused_keys = ['decode.loss_ce', 'decode.acc_seg']
    if kind == DEEPLAB:  # mmseg's own FCN auxiliary head, unchanged
        fused_keys += ['aux.loss_ce', 'aux.acc_seg']
    assert sorted(losses) == sorted(
        fused_keys +
        [f'aux.{k}_{m}' for k in ('loss_ce', 'acc_seg') for m in ('rgb', 'thermal')])
    torch.manual_seed(1)
    expected = plain.loss(inputs, samples)
    for key in fused_keys:
        assert torch.equal(losses[key], expected[key]), key

    labels = labels_of(samples)
    torch.manual_seed(1)
    streams = twin.backbone.forward_streams(inputs)
    for m in ('rgb', 'thermal'):
        logits = twin.modality_aux_head[m](streams[m])
        up = F.interpolate(logits, labels.shape[-2:], mode='bilinear')
        ce = mmseg_cross_entropy(up, labels)
        torch.testing.assert_close(losses[f'aux.loss_ce_{m}'], 0.5 * ce)
        valid = labels != 255
        accuracy = (up.argmax(1) == labels)[valid].float().mean() * 100
        torch.testing.assert_close(losses[f'aux.acc_seg_{m}'].reshape(()), accuracy)


def test_known_missing_modalities_reach_the_fused_path_only():
    """The fused losses see the samples' missing marks as the plain model (no
    auxiliary heads) does; each auxiliary head keeps its stream's own
    features."""
    model = build(model_cfg(DEEPLAB, aux_loss_weight=1.0))
    plain = build(model_cfg(DEEPLAB))
    plain.load_state_dict(model.state_dict(), strict=False)
    model.train(), plain.train()
    inputs, samples = batch()
    full = model.loss(inputs, samples)
    marked = with_missing(samples, torch.tensor([[True, True], [True, False]]))
    masked = model.loss(inputs, marked)
    expected = plain.loss(inputs, marked)
    assert not torch.equal(masked['decode.loss_ce'], full['decode.loss_ce'])
    for key in expected:
        assert torch.equal(masked[key], expected[key]), key
    for key in ('aux.loss_ce_rgb', 'aux.loss_ce_thermal'):
        assert torch.equal(masked[key], full[key]), key


def test_shared_heads_reuse_the_decode_head():
    cfg = model_cfg(DEEPLAB, aux_loss_weight=2.0, modality_aux_heads='shared')
    model = build(cfg)
    plain = build(dict(model_cfg(DEEPLAB), type='EncoderDecoder'))
    assert model.modality_aux_head is None and model.has_modality_heads()
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in plain.parameters())
    twin = copy.deepcopy(model)
    inputs, samples = batch()
    model.train(), twin.train()
    losses = model.loss(inputs, samples)
    labels = labels_of(samples)
    streams = twin.backbone.forward_streams(inputs)
    twin.decode_head(twin.backbone(inputs))  # the fused pass first, as in loss()
    for m in ('rgb', 'thermal'):
        logits = twin.decode_head(streams[m])
        up = F.interpolate(logits, labels.shape[-2:], mode='bilinear')
        torch.testing.assert_close(losses[f'aux.loss_ce_{m}'],
                                   2.0 * mmseg_cross_entropy(up, labels))


def stream_grads(model, inputs, samples, keep, beta):
    """Gradients of the stream parameters from the losses whose key ``keep``s."""
    model.zero_grad()
    model.backbone.fused_grad_scale = beta
    torch.manual_seed(3)  # SegFormer's drop path: the same draws every call
    losses = model.loss(inputs, samples)
    sum(v for k, v in losses.items() if 'loss' in k and keep(k)).backward()
    return {
        n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.backbone.streams.named_parameters()
    }, {
        n: p.grad
        for n, p in model.backbone.fusions.named_parameters()
    }


@pytest.mark.parametrize('kind', KINDS)
def test_modality_decoupling_beta(kind):
    model = build(model_cfg(kind, aux_loss_weight=1.0))
    model.train()
    inputs, samples = batch()
    everything = lambda k: True  # noqa: E731
    only_fused = lambda k: not is_aux(k)  # noqa: E731

    aux_alone, _ = stream_grads(model, inputs, samples, is_aux, 1.0)
    assert any(g.abs().sum() > 0 for g in aux_alone.values())
    # beta = 0: the fused losses give the streams nothing, exactly
    at_zero, fusion_grads = stream_grads(model, inputs, samples, everything, 0.0)
    for name, grad in aux_alone.items():
        assert torch.equal(at_zero[name], grad), name
    fused_at_zero, _ = stream_grads(model, inputs, samples, only_fused, 0.0)
    assert all(not g.any() for g in fused_at_zero.values())
    if kind == DEEPLAB:  # ConcatConvFusion has parameters: they still learn
        assert any(g is not None and g.abs().sum() > 0 for g in fusion_grads.values())
    # beta = 1: the plain sum of both
    at_one, _ = stream_grads(model, inputs, samples, everything, 1.0)
    fused_alone, _ = stream_grads(model, inputs, samples, only_fused, 1.0)
    assert any(g.abs().sum() > 0 for g in fused_alone.values())
    for name, grad in at_one.items():
        torch.testing.assert_close(
            grad, fused_alone[name] + aux_alone[name], rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(at_one[n], aux_alone[n]) for n in at_one)


def raise_if_called(*args, **kwargs):
    raise AssertionError('an auxiliary per-modality head ran at test time')


@pytest.mark.parametrize('kind', KINDS)
def test_auxiliary_heads_are_not_used_at_test_time(kind):
    model = build(model_cfg(kind, aux_loss_weight=1.0))
    plain = build(dict(model_cfg(kind), type='EncoderDecoder'))
    plain.load_state_dict(model.state_dict(), strict=False)
    for head in model.modality_aux_head.values():
        head.forward = raise_if_called
    inputs, samples = batch()
    model.eval(), plain.eval()
    ours, theirs = model.predict(inputs, samples), plain.predict(inputs, samples)
    for x, y in zip(ours, theirs):
        assert torch.equal(x.seg_logits.data, y.seg_logits.data)
    assert torch.equal(model(inputs, samples, mode='tensor'), plain._forward(inputs))
    model.train()
    with pytest.raises(AssertionError, match='ran at test time'):
        model.loss(inputs, samples)  # the patch is live


def test_a_training_run_logs_the_per_modality_losses(tmp_path):
    """The MFNet config, shrunk, through mmengine's runner: the auxiliary losses
    are summed into the loss and logged with their modality suffix."""
    path = 'configs/segmentation/deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py'
    root = write_mfnet(str(tmp_path / 'mfnet'))
    cfg = shrink_pipelines(
        tiny_config(path, root, str(tmp_path / 'work'), iters=1), scale=(64, 64))
    cfg.model = shrink_model(cfg.model, DEEPLAB, num_classes=9)
    cfg.model.aux_loss_weight = 0.5
    runner = build_runner(cfg)
    runner.model.modality_scores_source = 'view'
    runner.train()
    assert type(runner.model).__name__ == 'RGBTEncoderDecoder'
    hub = runner.message_hub
    logged = {
        k[len('train/'):]: hub.get_scalar(k).current()
        for k in hub.log_scalars if k.startswith('train/')
    }
    parts = [k for k in logged if 'loss' in k and k != 'loss']
    assert sorted(parts) == [
        'aux.loss_ce', 'aux.loss_ce_rgb', 'aux.loss_ce_thermal', 'decode.loss_ce'
    ]
    assert logged['loss'] == pytest.approx(sum(logged[k] for k in parts), rel=1e-5)
    for m in ('rgb', 'thermal'):
        assert 0 < logged[f'modality_score_{m}'] < logged[f'modality_count_{m}']


# ----------------------------------------------------------------------- scores
@pytest.mark.parametrize('kind', KINDS)
def test_aux_scores_against_the_cross_entropy_path(kind):
    model = build(model_cfg(kind, aux_loss_weight=1.0))
    twin = copy.deepcopy(model)
    model.modality_scores_source = 'aux'
    model.train(), twin.train()
    inputs, samples = batch()
    torch.manual_seed(1)
    losses = model.loss(inputs, samples)
    labels = labels_of(samples)
    torch.manual_seed(1)
    streams = twin.backbone.forward_streams(inputs)
    for m in ('rgb', 'thermal'):
        score, count = losses[f'modality_score_{m}'], losses[f'modality_count_{m}']
        assert score.dim() == 0 and count.dim() == 0
        assert not score.requires_grad and not count.requires_grad
        assert count.item() == 2 * (SIZE - 8) * SIZE  # the unlabelled band left out
        expected = gt_probability_sum(twin.modality_aux_head[m](streams[m]), labels)
        torch.testing.assert_close(score, expected)
        assert 0 < score.item() < count.item()
    # only logged: mmengine sums keys containing 'loss'
    assert not any('loss' in k for k in losses if k.startswith('modality_'))


def unimodal_view_logits(model, streams, m):
    """The view by hand: AddFusion -> the stream alone; ConcatConvFusion -> the
    fusion's conv on [own, zeros]."""
    feats = []
    for level, fusion in enumerate(model.backbone.fusions):
        own = streams[m][level]
        if type(fusion).__name__ == 'AddFusion':
            feats.append(own)
        else:
            parts = [
                own if n == m else torch.zeros_like(own) for n in ('rgb', 'thermal')
            ]
            feats.append(fusion.conv(torch.cat(parts, dim=1)))
    return model.decode_head(feats)


@pytest.mark.parametrize('kind', KINDS)
def test_view_scores_against_a_hand_made_view(kind):
    model = build(model_cfg(kind))  # no auxiliary heads needed
    model.modality_scores_source = 'view'
    model.train()
    inputs, samples = batch(seed=4)
    torch.manual_seed(1)
    losses = model.loss(inputs, samples)
    assert sorted(losses) == sorted(
        ['decode.loss_ce', 'decode.acc_seg'] +
        (['aux.loss_ce', 'aux.acc_seg'] if kind == DEEPLAB else []) +
        [f'modality_{s}_{m}' for s in ('score', 'count') for m in ('rgb', 'thermal')])
    # the view ran in the model's mode under view_mode (batch statistics, no
    # dropout) and changed no running statistic
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(1)
    streams = model.backbone.forward_streams(inputs)  # train mode, as in loss()
    model.load_state_dict(state)
    labels = labels_of(samples)
    with torch.no_grad(), view_mode(model):
        for m in ('rgb', 'thermal'):
            expected = gt_probability_sum(
                unimodal_view_logits(model, streams, m), labels)
            torch.testing.assert_close(losses[f'modality_score_{m}'], expected)
    assert model.modality_scores_source == 'view'


def test_view_scores_are_the_models_own_missing_modality_prediction():
    """In eval mode the whole loss is at test statistics: the view's score is
    then the test-time prediction with the other modality marked missing."""
    model = build(model_cfg(DEEPLAB))
    model.modality_scores_source = 'view'
    model.eval()
    inputs, samples = batch(seed=5)
    losses = model.loss(inputs, samples)
    labels = labels_of(samples)
    for index, m in enumerate(('rgb', 'thermal')):
        only = torch.zeros(2, 2, dtype=torch.bool)
        only[:, index] = True
        preds = model.predict(inputs, with_missing(samples, only))
        probs = torch.stack([p.seg_logits.data for p in preds]).softmax(1)
        truth = probs.gather(1, labels.clamp(max=NUM_CLASSES - 1)[:, None])[:, 0]
        torch.testing.assert_close(losses[f'modality_score_{m}'],
                                   truth[labels != 255].sum())


# ------------------------------------------------------------------ predictions
def sparse_batch():
    """Image 0: 10 labelled pixels; image 1: 3."""
    inputs, samples = batch(seed=6)
    where = [[(0, 0), (1, 5), (3, 3), (7, 60), (10, 10), (20, 2), (33, 33), (40, 41),
              (50, 0), (63, 63)], [(5, 5), (6, 7), (62, 1)]]
    for sample, pixels in zip(samples, where):
        label = torch.full((1, SIZE, SIZE), 255, dtype=torch.long)
        for k, (y, x) in enumerate(pixels):
            label[0, y, x] = k % NUM_CLASSES
        sample.gt_sem_seg = PixelData(data=label)
    return inputs, samples, where


@pytest.mark.parametrize('source', ['view', 'aux'])
def test_modality_predictions_pick_the_same_evenly_spaced_pixels(source):
    model = build(model_cfg(DEEPLAB, aux_loss_weight=1.0))
    inputs, samples, where = sparse_batch()
    model.train()
    model.backbone.streams['thermal'].eval()  # mixed modes survive the call
    modes = {n: m.training for n, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    out = model.modality_predictions(inputs, samples, source=source, top_k=4)
    assert {n: m.training for n, m in model.named_modules()} == modes
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # no statistics
    assert list(out) == ['fused', 'rgb', 'thermal']
    # floor(j * 10 / 4) = 0, 2, 5, 7 of image 0's pixels; all 3 of image 1's
    picked = [[where[0][j] for j in (0, 2, 5, 7)], where[1]]

    # in eval mode (as BTW's pass calls it) they are the test-time predictions
    model.eval()
    out = model.modality_predictions(inputs, samples, source=source, top_k=4)

    def at(probs, pixels):
        return torch.stack([probs[:, y, x] for y, x in pixels])

    preds = model.predict(inputs, samples)
    for i in range(2):
        probs = preds[i].seg_logits.data.softmax(0)
        torch.testing.assert_close(out['fused'][i], at(probs, picked[i]))
    for index, m in enumerate(('rgb', 'thermal')):
        if source == 'view':
            only = torch.zeros(2, 2, dtype=torch.bool)
            only[:, index] = True
            preds = model.predict(inputs, with_missing(samples, only))
            probs = [p.seg_logits.data.softmax(0) for p in preds]
        else:
            with torch.no_grad():
                streams = model.backbone.forward_streams(inputs)
                logits = model.modality_aux_head[m](streams[m])
            probs = F.interpolate(logits, (SIZE, SIZE), mode='bilinear').softmax(1)
        for i in range(2):
            assert out[m][i].shape == (len(picked[i]), NUM_CLASSES)
            torch.testing.assert_close(out[m][i], at(probs[i], picked[i]))
            torch.testing.assert_close(out[m][i].sum(1), torch.ones(len(picked[i])))
    # top_k above the count: every labelled pixel
    every = model.modality_predictions(inputs, samples, top_k=100)
    assert [len(t) for t in every['rgb']] == [10, 3]


# ------------------------------------------------------------------ extra losses
@pytest.mark.parametrize('options', [{}, dict(aux_loss_weight=1.0)])
def test_the_backbones_extra_losses_are_added(options):
    cfg = model_cfg(SEGFORMER, **options)
    cfg['backbone']['missing_substitute'] = dict(type=AligningSubstitute.__name__)
    model = build(cfg)
    model.modality_scores_source = 'view'  # the views must not replace them
    model.train()
    inputs, samples = batch()
    torch.manual_seed(1)
    losses = model.loss(inputs, samples)
    torch.manual_seed(1)
    streams = model.backbone.forward_streams(inputs)
    expected = (streams['rgb'][-1] - streams['thermal'][-1]).pow(2).mean()
    torch.testing.assert_close(losses['loss_align'], expected)
    assert losses['loss_align'].requires_grad

    cfg['backbone']['missing_substitute'] = dict(type=ClashingSubstitute.__name__)
    model = build(cfg)
    with pytest.raises(KeyError, match="extra loss 'decode.loss_ce'"):
        model.loss(inputs, samples)


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize('options,error,match', [
    (dict(aux_loss_weight=-1), ValueError, 'finite number >= 0.*got -1'),
    (dict(aux_loss_weight='1'), ValueError, "finite number >= 0.*got '1'"),
    (dict(aux_loss_weight=float('nan')), ValueError, 'finite number >= 0.*got nan'),
    (dict(aux_loss_weight=1, aux_heads='both'), ValueError, "aux_heads='both'"),
    (dict(aux_loss_weight=1, aux_heads='shared',
          aux_head=FCN), ValueError, 'must be None'),
    (dict(aux_loss_weight=1,
          aux_head='FCNHead'), TypeError, 'must be a decode-head config dict'),
    (dict(aux_loss_weight=1, aux_head=dict(FCN, num_classes=3)), ValueError,
     r'aux_head \(rgb\) has num_classes=3, decode_head has '
     '4'),
    (dict(aux_loss_weight=1, aux_head=dict(
        FCN, type=LossOverridingHead.__name__)), TypeError, 'overrides loss'),
    (dict(aux_loss_weight=1, aux_head=dict(
        FCN, type='FCNHeed')), KeyError, 'Nearest registered names: FCNHead'),
    (dict(aux_loss_weight=1, aux_head=FCN, modality_aux_head=FCN), ValueError,
     'give aux_head or its old name modality_aux_head, not both'),
])
def test_bad_arguments_are_named(options, error, match):
    with pytest.raises(error, match=match):
        build(model_cfg(DEEPLAB, **options))


def test_a_given_head_is_built_per_modality_and_weight_zero_builds_none():
    model = build(model_cfg(DEEPLAB, aux_loss_weight=1, aux_head=FCN))
    assert all(type(h) is FCNHead for h in model.aux_heads.values())
    inputs, samples = batch()
    model.train()
    assert 'aux.loss_ce_thermal' in model.loss(inputs, samples)
    model = build(model_cfg(DEEPLAB, aux_loss_weight=0, aux_head=FCN))
    assert model.aux_heads is None and not model.has_modality_heads()


def test_the_old_argument_names_and_checkpoints_keep_working():
    """modality_aux_head(s) were the segmentor's names before it took the
    detectors' vocabulary (aux_heads, aux_head): configs and checkpoints with
    them still work."""
    old = build(model_cfg(DEEPLAB, aux_loss_weight=1, modality_aux_head=FCN))
    new = build(model_cfg(DEEPLAB, aux_loss_weight=1, aux_head=FCN))
    assert old.aux_head_mode == old.modality_aux_heads == 'separate'
    assert old.modality_aux_head is old.aux_heads
    assert all(type(h) is FCNHead for h in old.aux_heads.values())
    state = {
        k.replace('aux_heads.', 'modality_aux_head.'): v + 1
        for k, v in old.state_dict().items()
    }
    assert any(k.startswith('modality_aux_head.rgb.') for k in state)
    new.load_state_dict(state)  # strict: every old key found its new place
    for key, value in new.state_dict().items():
        assert torch.equal(value, state[key.replace('aux_heads.',
                                                    'modality_aux_head.')])


def test_auxiliary_heads_and_views_need_a_stream_per_modality():
    cfg = model_cfg(DEEPLAB)
    cfg['backbone'] = dict(
        type='ResNetV1c',
        depth=18,
        base_channels=8,
        stem_channels=8,
        in_channels=4,
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        contract_dilation=True)
    with pytest.raises(
            TypeError,
            match=r'such as DualStreamBackbone; ResNetV1c has '
            r"no \['layout', 'forward_streams'"):
        build(dict(cfg, aux_loss_weight=1.0))
    model = build(cfg)  # a plain backbone is fine without them
    model.train()
    inputs, samples = batch()
    model.loss(inputs, samples)
    model.modality_scores_source = 'view'
    with pytest.raises(TypeError, match='such as DualStreamBackbone'):
        model.loss(inputs, samples)


def test_bad_sources_top_k_and_labels_are_named():
    model = build(model_cfg(DEEPLAB))
    model.train()
    inputs, samples = batch()
    model.modality_scores_source = 'fused'
    with pytest.raises(ValueError, match="unknown source 'fused'"):
        model.loss(inputs, samples)
    model.modality_scores_source = 'aux'
    with pytest.raises(ValueError, match='aux_loss_weight > 0'):
        model.loss(inputs, samples)
    with pytest.raises(ValueError, match='aux_loss_weight > 0'):
        model.modality_predictions(inputs, samples, source='aux')
    with pytest.raises(ValueError, match='top_k must be an int >= 1, got 0'):
        model.modality_predictions(inputs, samples, top_k=0)
    with pytest.raises(ValueError, match=r'needs the data samples.*\(gt_sem_seg\)'):
        model.modality_predictions(inputs, [SegDataSample(), SegDataSample()])
    samples[1].gt_sem_seg.data[0, 20, 20] = 7
    with pytest.raises(ValueError, match=r'label value\(s\) \[7\]'):
        model.modality_predictions(inputs, samples)
    assert isinstance(model, RGBTEncoderDecoder)
