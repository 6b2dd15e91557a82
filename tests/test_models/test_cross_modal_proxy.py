"""CrossModalProxy (CMPT-style substitute) and LowRankAdapter on DualStreamBackbone."""
from unittest import mock

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.models import CrossModalProxy, LowRankAdapter

SLIM_RESNET = dict(type='ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3))
TINY_MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=(1, 1, 1, 1),
    num_heads=(1, 1, 2, 4))
STREAMS = {
    'resnet-conv': (SLIM_RESNET, 'mmdet', dict(type='CrossModalProxy')),
    'mit-attention':
    (TINY_MIT, 'mmseg', dict(type='CrossModalProxy', kind='attention', num_queries=3)),
    'mit-conv': (TINY_MIT, 'mmseg', dict(type='CrossModalProxy')),
}
PRESENCE = torch.tensor([[True, True], [True, False], [False, True], [True, True]])
NAMES = ['rgb', 'thermal']


def build(cfg, scope='mmdet'):
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def backbone(stream=SLIM_RESNET, scope='mmdet', substitute=None, **kwargs):
    cfg = dict(type='DualStreamBackbone', backbone=stream, **kwargs)
    if substitute is not None:
        cfg['missing_substitute'] = substitute
    return build(cfg, scope)


def randomise(proxy, seed=0):
    """Give every predictor a non-zero output layer (they start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for levels in proxy.predictors.values():
            for module in levels:
                module.out.weight.copy_(
                    0.3 * torch.randn(module.out.weight.shape, generator=g))
                module.out.bias.copy_(0.1 *
                                      torch.randn(module.out.bias.shape, generator=g))


def streams_of(model, seed=0, batch=4, size=64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, size, size, generator=g)
    return x, model.forward_streams(x)


# --------------------------------------------------------------- building
def test_the_backbone_builds_the_proxy_with_its_channels_and_modalities():
    model = backbone(substitute=dict(type='CrossModalProxy'))
    proxy = model.missing_substitute
    assert isinstance(proxy, CrossModalProxy)
    assert proxy.channels == model.out_channels == [8, 16, 32, 64]
    assert proxy.modalities == NAMES
    assert sorted(proxy.predictors) == ['rgb_to_thermal', 'thermal_to_rgb']
    assert [g.shape for g in proxy.gates['rgb']] == [(8, ), (16, ), (32, ), (64, )]
    scalar = CrossModalProxy([8, 16], gate='scalar')
    assert [g.shape for g in scalar.gates['thermal']] == [(1, ), (1, )]


def test_levels_mismatch_names_both_counts():
    model = backbone(substitute=dict(type='CrossModalProxy', channels=[8, 16]))
    model.eval()
    x = torch.randn(2, 4, 64, 64)
    with pytest.raises(ValueError, match=r'built for 2 levels.*gives 4 levels'):
        model(x, presence=PRESENCE[:2])
    model.train()
    with pytest.raises(ValueError, match=r'built for 2 levels.*gives 4 levels'):
        # the training loss checks too, with nothing missing
        model.forward_with_streams(x, with_losses=True)


@pytest.mark.parametrize('kwargs,match', [
    (dict(kind='lstm'), "unknown kind 'lstm'"),
    (dict(gate='pixel'), "unknown gate 'pixel'"),
    (dict(loss_type='l1'), "unknown loss_type 'l1'"),
    (dict(kernel_size=2), 'kernel_size must be odd.*got 2'),
    (dict(kind='attention', num_heads=3), r'num_heads \(3\) dividing'),
    (dict(loss_weight=-1), 'loss_weight must be >= 0, got -1'),
    (dict(modalities=['rgb']), "at least two distinct names, got \\['rgb'\\]"),
    (dict(channels=[]), 'channels must be a non-empty list'),
])
def test_bad_arguments_are_named(kwargs, match):
    args = dict(channels=[8, 16])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        CrossModalProxy(**args)


def test_modalities_of_another_layout_are_refused():
    proxy = CrossModalProxy([4], modalities=['thermal', 'rgb'])
    outs = {n: (torch.zeros(1, 4, 2, 2), ) for n in NAMES}
    with pytest.raises(ValueError, match=r"built for modalities \['thermal', 'rgb'\]"):
        proxy.loss(outs, None)


# ------------------------------------------------------------ alignment loss
def hand_alignment(proxy, outs, rows, loss_type='mse'):
    terms = []
    for dst in NAMES:
        for src in NAMES:
            if src == dst:
                continue
            for level in range(len(proxy.channels)):
                pred = proxy.predictors[f'{src}_to_{dst}'][level](
                    outs[src][level][rows])
                target = outs[dst][level][rows]
                if loss_type == 'mse':
                    terms.append(((pred - target)**2).mean())
                else:
                    cos = (pred * target).sum(1) / (
                        pred.norm(dim=1).clamp(min=1e-8) *
                        target.norm(dim=1).clamp(min=1e-8))
                    terms.append((1 - cos).mean())
    return 0.2 * sum(terms) / len(terms)


@pytest.mark.parametrize('loss_type', ['mse', 'cosine'])
def test_alignment_loss_counts_only_fully_present_samples(loss_type):
    torch.manual_seed(0)
    model = backbone(substitute=dict(type='CrossModalProxy', loss_type=loss_type))
    proxy = model.missing_substitute
    randomise(proxy)
    model.train()
    _, outs = streams_of(model)
    outs = {n: tuple(level.detach() for level in levels) for n, levels in outs.items()}
    loss = proxy.loss(outs, PRESENCE)['loss_cmpt_align']
    expected = hand_alignment(proxy, outs, [0, 3], loss_type)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    assert float(loss.detach()) > 0
    # the partially present samples do not matter at all
    changed = {
        n: tuple(torch.cat([lv[:1], 5 + lv[1:3] * 3, lv[3:]]) for lv in levels)
        for n, levels in outs.items()
    }
    assert torch.equal(proxy.loss(changed, PRESENCE)['loss_cmpt_align'], loss)
    # presence None: every sample is fully present
    torch.testing.assert_close(
        proxy.loss(outs, None)['loss_cmpt_align'],
        hand_alignment(proxy, outs, [0, 1, 2, 3], loss_type),
        rtol=1e-5,
        atol=1e-7)


def test_the_backbone_returns_the_loss_with_its_features():
    torch.manual_seed(0)
    model = backbone(substitute=dict(type='CrossModalProxy'))
    randomise(model.missing_substitute)
    model.eval()  # fixed norm statistics: the same features in both calls
    model.missing_substitute.train()
    x = torch.randn(4, 4, 64, 64)
    outs = model.forward_streams(x)
    expected = model.missing_substitute.loss(outs, PRESENCE)['loss_cmpt_align']
    model.training = True  # the backbone's training flag only
    losses = model.forward_with_streams(x, PRESENCE, with_losses=True).losses
    assert list(losses) == ['loss_cmpt_align']
    torch.testing.assert_close(losses['loss_cmpt_align'], expected)
    assert model.forward_with_streams(x, PRESENCE).losses == {}
    # backbone(x) cannot return it: refused in training, not dropped
    with pytest.raises(RuntimeError, match='which backbone\\(x\\) cannot return'):
        model(x, presence=PRESENCE)


def test_no_fully_present_sample_gives_a_zero_in_the_graph():
    model = backbone(substitute=dict(type='CrossModalProxy'))
    proxy = model.missing_substitute
    model.train()
    _, outs = streams_of(model, batch=2)
    presence = torch.tensor([[True, False], [False, True]])
    loss = proxy.loss(outs, presence)['loss_cmpt_align']
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    for name, p in proxy.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0, name


def test_the_alignment_gradient_does_not_reach_the_target_stream():
    torch.manual_seed(0)
    model = backbone(substitute=dict(type='CrossModalProxy'))
    proxy = model.missing_substitute
    model.train()
    # only rgb -> thermal predicts anything: thermal is then a target only (the
    # zero output layer of thermal -> rgb passes no gradient to its source)
    randomise(proxy)
    for module in proxy.predictors['thermal_to_rgb']:
        module.reset_output()
    x = torch.randn(4, 4, 64, 64)
    proxy.loss(model.forward_streams(x), None)['loss_cmpt_align'].backward()
    thermal = [p.grad for p in model.streams['thermal'].parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in thermal)
    assert any(
        p.grad is not None and torch.count_nonzero(p.grad) > 0
        for p in model.streams['rgb'].parameters())  # the source learns
    # control: without the stop-gradient the target stream would get one
    model.zero_grad()
    outs = model.forward_streams(x)
    pred = proxy.predictors['rgb_to_thermal'][0](outs['rgb'][0])
    ((pred - outs['thermal'][0])**2).mean().backward()
    assert any(
        p.grad is not None and torch.count_nonzero(p.grad) > 0
        for p in model.streams['thermal'].parameters())


def test_detach_source_keeps_the_alignment_loss_inside_the_proxy():
    model = backbone(substitute=dict(type='CrossModalProxy', detach_source=True))
    randomise(model.missing_substitute)
    model.train()
    x = torch.randn(2, 4, 64, 64)
    model.missing_substitute.loss(model.forward_streams(x),
                                  None)['loss_cmpt_align'].backward()
    assert all(p.grad is None for p in model.streams.parameters())
    assert all(
        torch.count_nonzero(m.out.weight.grad) > 0
        for levels in model.missing_substitute.predictors.values() for m in levels)


# ------------------------------------------------------------ substitution
@pytest.mark.parametrize('variant', list(STREAMS))
def test_a_missing_modality_is_replaced_by_the_gated_prediction(variant):
    stream, scope, substitute = STREAMS[variant]
    torch.manual_seed(0)
    model = backbone(stream, scope, substitute)
    proxy = model.missing_substitute
    randomise(proxy)
    with torch.no_grad():
        for name in NAMES:
            for level, gate in enumerate(proxy.gates[name]):
                gate.copy_(torch.linspace(-1.0, 1.0, gate.numel()) + 0.1 * level)
    model.eval()
    fused_inputs = []
    for fusion in model.fusions:
        fusion.register_forward_hook(
            lambda module, args, out: fused_inputs.append(list(args[0])))
    x, outs = streams_of(model)
    fused = model(x, presence=PRESENCE)
    for level, feats in enumerate(fused_inputs):
        rgb, thermal = outs['rgb'][level], outs['thermal'][level]
        gate_rgb = torch.sigmoid(proxy.gates['rgb'][level]).view(1, -1, 1, 1)
        gate_thermal = torch.sigmoid(proxy.gates['thermal'][level]).view(1, -1, 1, 1)
        pred_thermal = proxy.predictors['rgb_to_thermal'][level](rgb[1:2])
        pred_rgb = proxy.predictors['thermal_to_rgb'][level](thermal[2:3])
        assert float(pred_thermal.detach().abs().max()) > 1e-3
        torch.testing.assert_close(feats[1][1:2], gate_thermal * pred_thermal)
        torch.testing.assert_close(feats[0][2:3], gate_rgb * pred_rgb)
        for i in (0, 3):  # present: the stream's own features
            assert torch.equal(feats[0][i], rgb[i]) and torch.equal(
                feats[1][i], thermal[i])
        assert torch.equal(feats[0][1], rgb[1]) and torch.equal(feats[1][2], thermal[2])
        torch.testing.assert_close(fused[level][1],
                                   rgb[1] + (gate_thermal * pred_thermal)[0])


def test_gated_fusion_weighs_the_prediction_instead_of_masking_it():
    torch.manual_seed(0)
    model = backbone(
        substitute=dict(type='CrossModalProxy'), fusion=dict(type='GatedFusion'))
    proxy = model.missing_substitute
    randomise(proxy)
    model.eval()
    seen = []
    for fusion in model.fusions:
        fusion.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(kwargs.get('presence')),
            with_kwargs=True)
    x, outs = streams_of(model)
    fused = model(x, presence=PRESENCE)
    assert seen == [None] * len(model.fusions)
    for level, fusion in enumerate(model.fusions):
        pred = torch.sigmoid(proxy.gates['thermal'][level]).view(1, -1, 1, 1) * \
            proxy.predictors['rgb_to_thermal'][level](outs['rgb'][level][1:2])
        want = fusion([outs['rgb'][level][1:2], pred])
        torch.testing.assert_close(fused[level][1:2], want)
        # a masked gate would give the RGB features alone
        assert not torch.allclose(fused[level][1], outs['rgb'][level][1])


@pytest.mark.parametrize('variant', list(STREAMS))
def test_a_training_step_with_missing_modalities_trains_the_proxy(variant):
    stream, scope, substitute = STREAMS[variant]
    torch.manual_seed(0)
    model = backbone(stream, scope, substitute)
    proxy = model.missing_substitute
    model.train()
    x = torch.randn(4, 4, 64, 64)
    _, fused, extra = model.forward_with_streams(x, PRESENCE, with_losses=True)
    loss = sum(level.square().mean() for level in fused)
    align = extra['loss_cmpt_align']
    assert torch.isfinite(align) and float(align.detach()) > 0
    (loss + align).backward()
    for levels in proxy.predictors.values():  # every output layer learns
        for module in levels:
            assert torch.count_nonzero(module.out.weight.grad) > 0
    # the gates learn from the task loss through the substituted samples; the
    # prediction is 0 at the start, so their first gradient is 0, but present
    assert all(g.grad is not None for g in proxy.gates.parameters())


def test_a_new_proxy_behaves_as_zeros():
    torch.manual_seed(0)
    with_proxy = backbone(substitute=dict(type='CrossModalProxy'))
    torch.manual_seed(0)
    with_zeros = backbone()
    with_zeros.load_state_dict(with_proxy.state_dict(), strict=False)
    with_proxy.eval(), with_zeros.eval()
    x = torch.randn(4, 4, 64, 64)
    for a, b in zip(with_proxy(x, presence=PRESENCE), with_zeros(x, presence=PRESENCE)):
        assert torch.equal(a, b)


def test_nothing_runs_when_every_modality_is_present_at_test_time():
    model = backbone(substitute=dict(type='CrossModalProxy'))
    proxy = model.missing_substitute
    x = torch.randn(2, 4, 64, 64)
    with mock.patch.object(proxy, 'forward', wraps=proxy.forward) as fwd, \
            mock.patch.object(proxy, 'loss', wraps=proxy.loss) as loss:
        model.eval()
        model(x)
        assert fwd.call_count == 0 and loss.call_count == 0
        model.train()
        # training: the alignment loss, still no substitution
        model.forward_with_streams(x, with_losses=True)
        assert fwd.call_count == 0 and loss.call_count == 1


# --------------------------------------------------------------- adapters
def test_low_rank_adapter_starts_as_identity_and_trains():
    torch.manual_seed(0)
    adapter = LowRankAdapter([4, 6], rank=2)
    assert [tuple(c.weight.shape) for c in adapter.down] == [(2, 4, 1, 1), (2, 6, 1, 1)]
    levels = (torch.randn(2, 4, 5, 5), torch.randn(2, 6, 3, 3))
    out = adapter(levels)
    assert all(torch.equal(a, b) for a, b in zip(out, levels))
    target = tuple(2 * f + 1 for f in levels)
    optim = torch.optim.SGD(adapter.parameters(), lr=0.05)

    def step():
        optim.zero_grad()
        loss = sum(F.mse_loss(a, b) for a, b in zip(adapter(levels), target))
        loss.backward()
        optim.step()
        return float(loss.detach())

    first = step()
    assert all(torch.count_nonzero(c.weight) > 0 for c in adapter.up)
    losses = [step() for _ in range(5)]
    assert all(torch.count_nonzero(c.weight.grad) > 0 for c in adapter.down)
    assert losses[-1] < first
    assert not torch.equal(adapter(levels)[0], levels[0])


def test_low_rank_adapter_stays_identity_after_a_parent_init_cfg():
    model = backbone(
        stream_adapter=dict(type='LowRankAdapter'),
        init_cfg=dict(type='Kaiming', layer='Conv2d'))
    model.init_weights()
    for adapter in model.adapters.values():
        assert adapter.rank == 1 and adapter.channels == model.out_channels
        assert all(torch.count_nonzero(c.weight) == 0 for c in adapter.up)
        assert all(torch.count_nonzero(c.weight) > 0 for c in adapter.down)


def test_low_rank_adapter_errors():
    with pytest.raises(ValueError, match='rank must be a positive integer, got 0'):
        LowRankAdapter([4], rank=0)
    with pytest.raises(ValueError, match='channels must be a non-empty list'):
        LowRankAdapter(4)
    adapter = LowRankAdapter([4, 8])
    with pytest.raises(ValueError, match=r'got 1 feature levels, built for 2'):
        adapter((torch.zeros(1, 4, 2, 2), ))
    with pytest.raises(ValueError, match='level 1 has 6 channels, built for 8'):
        adapter((torch.zeros(1, 4, 2, 2), torch.zeros(1, 6, 2, 2)))


def test_frozen_streams_get_no_gradient_and_keep_their_statistics():
    torch.manual_seed(0)
    model = backbone(
        stream_adapter=dict(type='LowRankAdapter', rank=1),
        freeze_streams=True,
        fusion=dict(type='ConcatConvFusion'),
        substitute=dict(type='CrossModalProxy'))
    model.train()
    assert all(not m.training for m in model.streams.modules())
    stats = {
        k: v.clone()
        for k, v in model.streams.state_dict().items() if 'running' in k
    }
    x = torch.randn(4, 4, 64, 64)
    _, fused, extra = model.forward_with_streams(x, PRESENCE, with_losses=True)
    loss = sum(level.mean() for level in fused) + sum(extra.values())
    loss.backward()
    assert all(p.grad is None and not p.requires_grad
               for p in model.streams.parameters())
    assert all(torch.equal(v, model.streams.state_dict()[k]) for k, v in stats.items())
    for adapter in model.adapters.values():
        assert all(torch.count_nonzero(c.weight.grad) > 0 for c in adapter.up)
    assert all(p.grad is not None for p in model.fusions.parameters())
    assert any(
        p.grad is not None and torch.count_nonzero(p.grad) > 0
        for p in model.missing_substitute.parameters())


def test_registered_names():
    assert MODELS.get('CrossModalProxy') is CrossModalProxy
    assert MODELS.get('LowRankAdapter') is LowRankAdapter
    assert isinstance(CrossModalProxy([4]).predictors['rgb_to_thermal'][0], nn.Module)
