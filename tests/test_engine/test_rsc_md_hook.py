"""RSCMDHook: the fused-gradient scale schedule, its effect, its errors."""
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

import mwam_mm  # noqa: F401
from mwam_mm.engine import RSCMDHook
from tests.helpers.runners import fresh_message_hub
from tests.helpers.toy import ToyRGBTModel, toy_batch


def make_runner(model, epoch=0, it=0):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    hub = fresh_message_hub('rsc')
    return SimpleNamespace(
        model=model, optim_wrapper=optim, message_hub=hub, epoch=epoch, iter=it)


def start(hook, runner):
    hook.before_run(runner)
    hook.before_train(runner)


def scale_seen(hook, runner):
    """The backbone's fused_grad_scale during one training iteration."""
    seen = []
    handle = runner.model.backbone.register_forward_pre_hook(
        lambda m, a: seen.append(m.fused_grad_scale))
    hook.before_train_iter(runner, 0)
    losses = runner.model(toy_batch(), mode='loss')
    runner.optim_wrapper.update_params(sum(losses.values()))
    hook.after_train_iter(runner, 0)
    handle.remove()
    return seen[0]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ToyRGBTModel(aux_losses=True)


@pytest.mark.parametrize('beta', [0.0, 0.25])
def test_warmup_in_epochs_then_beta_then_restored(model, beta):
    hook = RSCMDHook(beta=beta)  # warm-up: 1 epoch
    runner = make_runner(model)
    start(hook, runner)
    hub = runner.message_hub.log_scalars
    seen = []
    for epoch in (0, 0, 1, 2):
        runner.epoch = epoch
        seen.append(scale_seen(hook, runner))
        assert hub['train/rsc_md_beta'].current() == seen[-1]
        # set through the backbone's method when the phase changes (applied in
        # training mode only, so validation never sees it)
        assert model.backbone.fused_grad_scale == seen[-1]
        assert set(hook.grad_norms.norms) == {'rgb', 'thermal'}
    assert seen == [1.0, 1.0, beta, beta]
    hook.after_train(runner)
    assert model.backbone.fused_grad_scale == 1.0


def test_warmup_in_iterations(model):
    hook = RSCMDHook(beta=0.5, warmup_iters=2)
    runner = make_runner(model, epoch=5)
    start(hook, runner)
    seen = []
    for it in range(4):
        runner.iter = it
        seen.append(scale_seen(hook, runner))
    assert seen == [1.0, 1.0, 0.5, 0.5]
    hook = RSCMDHook(beta=0.5, warmup_epochs=0)  # no warm-up
    runner = make_runner(model)
    start(hook, runner)
    assert scale_seen(hook, runner) == 0.5


def stream_and_head_grads(model, scale_of_fused):
    """Gradients after one step with the hook past its warm-up."""
    hook = RSCMDHook(beta=scale_of_fused, warmup_iters=0)
    runner = make_runner(model)
    start(hook, runner)
    hook.before_train_iter(runner, 0)
    sum(model(toy_batch(), mode='loss').values()).backward()
    hook.after_train_iter(runner, 0)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize('beta', [0.0, 0.5])
def test_streams_get_aux_gradient_plus_beta_times_fused(model, beta):
    reference = copy.deepcopy(model)
    got = stream_and_head_grads(model, beta)
    losses = reference(toy_batch(), mode='loss')
    params = dict(reference.named_parameters())
    aux = torch.autograd.grad(
        losses['loss_aux_rgb'] + losses['loss_aux_thermal'],
        list(params.values()),
        retain_graph=True)
    fused = torch.autograd.grad(losses['loss'], list(params.values()))
    for (name, _), a, f in zip(params.items(), aux, fused):
        if name.startswith('backbone.streams.'):
            torch.testing.assert_close(got[name], a + beta * f, rtol=1e-5, atol=1e-7)
        else:  # the head learns from the fused loss (and the shared aux) in full
            torch.testing.assert_close(got[name], a + f, rtol=1e-5, atol=1e-7)
    if beta == 0.0:  # stop-gradient: the streams see their own loss only
        for name in got:
            if name.startswith('backbone.streams.'):
                assert torch.allclose(got[name], aux[list(params).index(name)])


class NoOutputs(BaseModel):
    """A two-stream model without per-modality heads or predictions."""

    def __init__(self):
        super().__init__()
        self.backbone = ToyRGBTModel().backbone

    def forward(self, inputs, data_samples=None, mode='loss'):
        return {}


def test_errors(model):
    for beta in (-0.1, 1.5, float('nan')):
        with pytest.raises(ValueError, match=f'beta must be in \\[0, 1\\].*got {beta}'):
            RSCMDHook(beta=beta)
    with pytest.raises(ValueError, match='not both'):
        RSCMDHook(warmup_epochs=1, warmup_iters=10)
    with pytest.raises(
            ValueError, match='warmup_iters must be an integer >= 0, '
            'got -1'):
        RSCMDHook(warmup_iters=-1)
    torch.manual_seed(0)
    for plain in (ToyRGBTModel(aux_losses=False), NoOutputs()):
        with pytest.raises(ValueError, match="set the model's aux_loss_weight > 0"):
            start(RSCMDHook(), make_runner(plain))
    bare = ToyRGBTModel(aux_losses=True)

    class Backbone(nn.Module):  # no set_fused_grad_scale

        def __init__(self, branches):
            super().__init__()
            self.streams = nn.ModuleDict(branches)

        def modality_branches(self):
            return dict(self.streams.items())

    bare.backbone = Backbone(model.backbone.modality_branches())
    with pytest.raises(ValueError, match='Backbone has no set_fused_grad_scale'):
        start(RSCMDHook(), make_runner(bare))
