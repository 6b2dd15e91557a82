"""Per-branch gradient weights are exact on real multi-level streams.

A stream's outputs feed each other (ResNet's C2 -> layer2 -> C3 ...; MiT's stages
likewise), so scaling the gradient that reaches each *output* would scale an early
stage once per level. These tests take the shipped synthetic detector's real ResNet
streams and a MiT stream and check every parameter gradient of a branch against
``k`` times the unmodulated one, everything else unchanged; and the order of the
weights with gradient clipping and AMP's loss scaling; and OGM-GE's modulation,
which works on the parameter gradients, on the same streams.
"""
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.engine import BranchWeightHook, MWAMHook
from mwam_mm.engine.modulation import (BranchGradientNorms, GradientModulation,
                                       ParameterGradientModulation)
from tests.conftest import ROOT
from tests.helpers.detection import detection_batch as tiny_batch
from tests.helpers.runners import fresh_message_hub

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
SEGFORMER = 'configs/_base_/models/segformer_dual-mit-b0.py'
WEIGHTS = dict(rgb=0.5, thermal=1.45)


def synthetic_detector():
    """The shipped synthetic detector, in float64: the weights' exactness is
    checked to 1e-6, below what float32 rounding of the scaled intermediate
    gradients would allow."""
    cfg = Config.fromfile(f'{ROOT}/{SYNTHETIC}').model
    with DefaultScope.overwrite_default_scope('mmdet'):
        torch.manual_seed(0)
        return MODELS.build(cfg).double()


def detection_batch(model, seed=0):
    data = model.data_preprocessor(tiny_batch(seed=seed), True)
    data['inputs'] = data['inputs'].double()
    return data


def detector_loss(model, data):
    losses = model(**copy.deepcopy(data), mode='loss')
    return sum(
        v if not isinstance(v, list) else sum(v) for k, v in losses.items()
        if 'loss' in k)


def grads(model):
    return {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters() if p.grad is not None
    }


def branch_of(name):
    for modality in WEIGHTS:
        if name.startswith(f'backbone.streams.{modality}.'):
            return modality
    return None


def assert_scaled(got, reference, weights, rel=1e-6):
    """Every parameter gradient of branch m is weights[m] times the reference
    (relative error <= rel); every other gradient is unchanged."""
    assert set(got) == set(reference)
    scaled = {m: 0 for m in weights}
    for name, ref in reference.items():
        modality = branch_of(name)
        k = 1.0 if modality is None else weights[modality]
        error = (got[name] - k * ref).norm().item()
        assert error <= rel * max((k * ref).norm().item(), 1e-30), (name, k, error)
        if modality is not None:
            scaled[modality] += 1
    # the early stages are there, not only the last level
    for modality in weights:
        assert scaled[modality] > 20
        for stage in ('conv1.weight', 'layer1.0.conv1.weight', 'layer4.1.conv2.weight'):
            assert f'backbone.streams.{modality}.{stage}' in reference


def modulated_grads(model, data, weights, modulation_cls=GradientModulation):
    modulation = modulation_cls(model.backbone.modality_branches(), weights.get)
    modulation.install()
    modulation.active = True
    model.zero_grad()
    detector_loss(model, data).backward()
    modulation.remove()
    return grads(model)


def test_every_resnet_stream_gradient_is_scaled_by_exactly_k():
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    assert_scaled(modulated_grads(model, data, WEIGHTS), grads(reference), WEIGHTS)


class OutputHookModulation(GradientModulation):
    """The old way: scale the gradient reaching each output of the stream."""

    def install(self, runner=None):
        for name, branch in self.branches.items():

            def hook(module, args, output, name=name):
                for t in output:
                    t.register_hook(lambda g, name=name: g * self.weight_of(name))

            self._handles.append(branch.register_forward_hook(hook))


def test_scaling_the_stream_outputs_compounds_on_a_multi_level_stream():
    """Why parameters are scaled: scaling each output level's gradient gives the
    stem k**4 (0.0625 for k = 0.5) on a 4-level ResNet when every level has a
    loss: the check above fails for it."""
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    got = modulated_grads(model, data, WEIGHTS, OutputHookModulation)
    with pytest.raises(AssertionError):
        assert_scaled(got, grads(reference), WEIGHTS)
    ref = grads(reference)
    name = 'backbone.streams.rgb.conv1.weight'
    ratio = (got[name] * ref[name]).sum() / ref[name].square().sum()
    assert ratio < 0.2  # not 0.5


def test_mwam_hook_scales_the_real_stream_by_its_own_k():
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    hook = MWAMHook(frm=dict(grid_offset=0))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    runner = SimpleNamespace(
        model=model,
        optim_wrapper=optim,
        message_hub=fresh_message_hub('exact'),
        iter=0,
        seed=0)
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    detector_loss(model, data).backward()
    weights = dict(hook.weights)
    assert all(abs(k - 1.0) > 1e-3 for k in weights.values())
    assert_scaled(grads(model), grads(reference), weights)
    # the gradient-norm probe reads the parameter gradients as the optimizer does
    norms = BranchGradientNorms(model.backbone.modality_branches())
    norms.install(runner)
    norms.measure()
    norms.remove()
    for m, k in weights.items():
        expected = torch.stack([
            g.norm() for n, g in grads(reference).items() if branch_of(n) == m
        ]).norm().item() * k
        assert norms.norms[m] == pytest.approx(expected, rel=1e-5)
    hook.after_train_iter(runner, 0)
    hook.after_train(runner)


def test_every_mit_stream_gradient_is_scaled_by_exactly_k():
    cfg = Config.fromfile(f'{ROOT}/{SEGFORMER}').model.backbone
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        backbone = MODELS.build(cfg).double()
    reference = copy.deepcopy(backbone)
    x = torch.randn(2, 4, 64, 64, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)

    def loss(module):
        # a loss on every level, as a decode head over all stages has; the same
        # stochastic depth draws on both sides
        torch.manual_seed(3)
        outs = module(x)
        return sum(
            (o * torch.randn(o.shape, generator=g.manual_seed(i), dtype=o.dtype)).sum()
            for i, o in enumerate(outs))

    loss(reference).backward()
    modulation = GradientModulation(backbone.modality_branches(), WEIGHTS.get)
    modulation.install()
    modulation.active = True
    loss(backbone).backward()
    got, ref = grads(backbone), grads(reference)
    assert set(got) == set(ref)
    stages = set()
    for name, r in ref.items():
        modality = next((m for m in WEIGHTS if name.startswith(f'streams.{m}.')), None)
        k = 1.0 if modality is None else WEIGHTS[modality]
        error = (got[name] - k * r).norm().item()
        assert error <= 1e-6 * max((k * r).norm().item(), 1e-30), (name, error)
        if modality is not None:
            stages.add(name.split('.')[3])
    assert {'0', '1', '2', '3'} <= stages  # every MiT stage


def test_weights_are_applied_before_clipping():
    """backward (k) -> clipping of the scaled gradients -> step."""
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    scaled = {
        n: g * (WEIGHTS[branch_of(n)] if branch_of(n) else 1.0)
        for n, g in grads(reference).items()
    }
    max_norm = 0.1
    total = torch.stack([g.norm() for g in scaled.values()]).norm()
    coef = max_norm / (total + 1e-6)
    assert coef < 1  # clipping acts
    seen = {}
    optim = torch.optim.SGD(model.parameters(), lr=0.0)
    optim.register_step_pre_hook(lambda *args: seen.update(grads(model)))
    wrapper = OptimWrapper(optim, clip_grad=dict(max_norm=max_norm))
    modulation = GradientModulation(model.backbone.modality_branches(), WEIGHTS.get)
    modulation.install()
    modulation.active = True
    wrapper.update_params(detector_loss(model, data))
    for name, expected in scaled.items():
        error = (seen[name] - coef * expected).norm().item()
        assert error <= 1e-5 * (coef * expected).norm().item() + 1e-12, name


def test_amp_loss_scale_cancels_and_the_weights_stay():
    """AmpOptimWrapper: loss x S -> backward (k) -> unscale (/ S) -> step: the
    optimizer gets k times the gradient, whatever S."""
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    seen = {}
    optim = torch.optim.SGD(model.parameters(), lr=0.0)
    optim.register_step_pre_hook(lambda *args: seen.update(grads(model)))
    wrapper = AmpOptimWrapper.__new__(AmpOptimWrapper)
    OptimWrapper.__init__(wrapper, optim)
    # mmengine's AMP wrapper with a CPU grad scaler of a large fixed scale
    wrapper.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**12)
    wrapper._scale_update_param = None
    wrapper.cast_dtype = None
    modulation = GradientModulation(model.backbone.modality_branches(), WEIGHTS.get)
    modulation.install()
    modulation.active = True
    before_unscale = {}
    unscale = wrapper.loss_scaler.unscale_

    def record_then_unscale(optimizer):
        before_unscale.update(grads(model))
        return unscale(optimizer)

    wrapper.loss_scaler.unscale_ = record_then_unscale
    wrapper.update_params(detector_loss(model, data))
    assert seen, 'the optimizer did not step'
    # backward saw the scaled loss: k * S * g before unscaling, k * g after
    assert_scaled({
        n: g / 2**12
        for n, g in before_unscale.items()
    },
                  grads(reference),
                  WEIGHTS,
                  rel=1e-5)
    assert_scaled(seen, grads(reference), WEIGHTS, rel=1e-5)


def test_a_branch_sharing_parameters_with_the_model_is_refused_by_name():
    model = synthetic_detector()
    model.tied_stem = model.backbone.streams.rgb.conv1  # used outside the branch too
    hook = BranchWeightHook(weights=WEIGHTS)
    runner = SimpleNamespace(model=model)
    with pytest.raises(ValueError, match=r"tied_stem\.weight.*cannot be exact"):
        hook.before_run(runner)


def test_branches_sharing_parameters_are_refused_by_name():
    model = synthetic_detector()
    model.backbone.streams.thermal.layer4 = model.backbone.streams.rgb.layer4
    with pytest.raises(ValueError, match=r"share parameters \(layer4"):
        MWAMHook().before_run(SimpleNamespace(model=model))


def test_branch_weight_hook_scales_by_its_constants_and_checks_them():
    model = synthetic_detector()
    reference = copy.deepcopy(model)
    data = detection_batch(model)
    detector_loss(reference, data).backward()
    hook = BranchWeightHook(weights=WEIGHTS)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    hub = fresh_message_hub('constk')
    runner = SimpleNamespace(model=model, optim_wrapper=optim, message_hub=hub)
    hook.before_run(runner)
    hook.before_train(runner)
    hook.before_train_iter(runner, 0)
    detector_loss(model, data).backward()
    hook.after_train_iter(runner, 0)
    assert_scaled(grads(model), grads(reference), WEIGHTS)
    assert hub.get_scalar('train/branch_k_thermal').current() == 1.45
    hook.after_train(runner)
    # outside a training iteration nothing is scaled
    model.zero_grad()
    detector_loss(model, data).backward()
    assert_scaled(grads(model), grads(reference), dict(rgb=1.0, thermal=1.0))
    for bad in (dict(rgb=0.0, thermal=1.0), dict(rgb=float('nan'),
                                                 thermal=1.0), {}, [0.5, 1.0]):
        with pytest.raises(ValueError, match='BranchWeightHook'):
            BranchWeightHook(weights=bad)
    with pytest.raises(ValueError, match=r"one weight per branch"):
        BranchWeightHook(weights=dict(rgb=0.5)).before_run(runner)


def test_ogm_ge_modulation_scales_exactly_the_real_streams_conv_kernels():
    """OGM-GE works on the parameter gradients themselves (an optimizer step
    pre-hook), so multi-level wiring cannot compound it: each conv kernel of a
    branch gets exactly k, every other gradient (BN, fusion, neck, head) none."""
    model = synthetic_detector()
    data = detection_batch(model)
    detector_loss(model, data).backward()
    reference = grads(model)
    modulation = ParameterGradientModulation(
        model.backbone.modality_branches(), WEIGHTS.get, select=lambda p: p.dim() == 4)
    optim = torch.optim.SGD(model.parameters(), lr=0.0)
    modulation.install(SimpleNamespace(optim_wrapper=OptimWrapper(optim)))
    modulation.active = True
    optim.step()
    got = grads(model)
    kernels = 0
    for name, ref in reference.items():
        modality = branch_of(name)
        k = WEIGHTS[modality] if modality and ref.dim() == 4 else 1.0
        kernels += k != 1.0
        error = (got[name] - k * ref).norm().item()
        assert error <= 1e-6 * max((k * ref).norm().item(), 1e-30), (name, error)
    assert kernels >= 2 * 20
