"""The shared modulation layer on its own, and the per-branch gradient norms."""
import copy

import pytest
import torch

import mwam_mm  # noqa: F401
from mwam_mm.engine import (BranchGradNormHook, GradientModulation, LossModulation,
                            MWAMHook)
from tests.helpers.runners import hook_of, toy_runner
from tests.helpers.toy import ToyRGBTModel, toy_batch
from tests.test_engine.test_mwam_hook import make_runner, start, train_step

WEIGHTS = dict(rgb=0.25, thermal=3.0)


def test_gradient_modulation_with_fixed_weights_and_only_when_active():
    torch.manual_seed(0)
    model = ToyRGBTModel()
    reference = copy.deepcopy(model)
    modulation = GradientModulation(model.backbone.modality_branches(), WEIGHTS.get)
    modulation.install()
    batch = toy_batch()
    modulation.active = True
    sum(model(batch, mode='loss').values()).backward()
    sum(reference(batch, mode='loss').values()).backward()
    for name, k in WEIGHTS.items():
        for p, r in zip(model.backbone.streams[name].parameters(),
                        reference.backbone.streams[name].parameters()):
            torch.testing.assert_close(p.grad, r.grad * k)
    for p, r in zip(model.head.parameters(), reference.head.parameters()):
        torch.testing.assert_close(p.grad, r.grad)
    model.zero_grad()
    modulation.active = False  # outside a training iteration: untouched
    sum(model(batch, mode='loss').values()).backward()
    for p, r in zip(model.backbone.parameters(), reference.backbone.parameters()):
        torch.testing.assert_close(p.grad, r.grad)
    modulation.remove()
    assert modulation._handles == []


def test_loss_modulation_with_fixed_weights():
    torch.manual_seed(0)
    model = ToyRGBTModel(aux_losses=True)
    plain = model(toy_batch(), mode='loss')
    modulation = LossModulation(model.backbone.modality_branches(), WEIGHTS.get)
    modulation.install(make_runner(model))
    modulation.active = True
    scaled = model(toy_batch(), mode='loss')
    torch.testing.assert_close(scaled['loss'], plain['loss'])
    for name, k in WEIGHTS.items():
        torch.testing.assert_close(scaled[f'loss_aux_{name}'],
                                   plain[f'loss_aux_{name}'] * k)


def test_mwam_logs_the_gradient_norm_reaching_each_branch():
    torch.manual_seed(0)
    model = ToyRGBTModel()
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    seen = {}

    def capture(optimizer, args, kwargs):  # registered after the hook's own
        for name in ('rgb', 'thermal'):
            grads = [
                p.grad.flatten() for p in model.backbone.streams[name].parameters()
            ]
            seen[name] = torch.cat(grads).norm().item()

    runner.optim_wrapper.optimizer.register_step_pre_hook(capture)
    train_step(hook, runner, toy_batch())
    scalars = runner.message_hub.log_scalars
    for name in ('rgb', 'thermal'):
        logged = scalars[f'train/grad_norm_{name}'].current()
        assert logged == pytest.approx(seen[name], rel=1e-5)
        assert logged > 0


def test_branch_grad_norm_hook_alone_changes_nothing(tmp_path):
    plain = toy_runner(tmp_path / 'plain', epochs=1, name='p')
    plain.train()
    probed = toy_runner(
        tmp_path / 'probed', epochs=1, name='g', hooks=[BranchGradNormHook()])
    probed.train()
    hook = hook_of(probed, BranchGradNormHook)
    assert set(hook.grad_norms.norms) == {'rgb', 'thermal'}
    history = probed.message_hub.get_scalar('train/grad_norm_rgb').data[0]
    assert len(history) == 4  # one per iteration
    for a, b in zip(plain.model.state_dict().values(),
                    probed.model.state_dict().values()):
        assert torch.equal(a, b)
