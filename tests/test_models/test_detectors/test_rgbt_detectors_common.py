"""What both RGB-T detectors share (ModalityOutputsMixin), through
RGBTSingleStageDetector and RGBTTwoStageDetector alike (tiny RetinaNet and
Faster R-CNN): stock behaviour by default, scores that leave the fused losses
alone, RSC's auxiliary heads, modality decoupling, the backbone's extra losses
and ignored modalities, bad arguments and per-batch missing marks."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from mwam_mm.models import RGBTSingleStageDetector, RGBTTwoStageDetector
from tests.conftest import ROOT
from tests.helpers.detectors import (CONFIGS, FRCNN, RETINA, STOCK, batch, build,
                                     is_aux, leaves, preprocess, run_loss, same_losses,
                                     total)

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


# -- bad arguments and per-batch missing marks -------------------------------------


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
