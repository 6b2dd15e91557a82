"""MWAMHook inside mmengine's Runner: resume, accumulation, clipping."""
from unittest import mock

import pytest
import torch

import mwam_mm  # noqa: F401
from mwam_mm.compat import load_local_checkpoint
from mwam_mm.engine import MWAMHook, UpdateModulation
from tests.helpers.runners import hook_of, params_of, same_params, toy_runner


class RecordK(MWAMHook):
    """MWAMHook that remembers the weights of every iteration (and, in update
    mode, how many weights wait for the next optimizer step)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        update = self.modulations.get('update')
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        self.history = getattr(self, 'history', []) + [dict(self.weights)]
        if update is not None:
            self.accumulated_counts = getattr(self, 'accumulated_counts',
                                              []) + [update.k_count]


def test_resume_gives_the_same_weights_and_parameters(tmp_path):
    full = toy_runner(tmp_path / 'full', epochs=2, hooks=[RecordK()], name='f')
    full.train()
    full_hook = hook_of(full, RecordK)

    first = toy_runner(tmp_path / 'split', epochs=1, hooks=[RecordK()], name='s1')
    first.train()
    second = toy_runner(
        tmp_path / 'split',
        epochs=2,
        hooks=[RecordK()],
        name='s2',
        resume=True,
        load_from=str(tmp_path / 'split' / 'epoch_1.pth'))
    second.train()
    resumed_hook = hook_of(second, RecordK)
    split_history = hook_of(first, RecordK).history + resumed_hook.history
    assert len(split_history) == len(full_hook.history) == 8
    for a, b in zip(split_history, full_hook.history):
        assert a == pytest.approx(b, rel=1e-12)
    resumed_state = resumed_hook.weighting.state_dict()
    full_state = full_hook.weighting.state_dict()
    assert resumed_state['bank'] == pytest.approx(full_state['bank'], rel=1e-12)
    assert resumed_state['steps'] == full_state['steps'] == 8
    assert same_params(params_of(second), params_of(full))


def test_without_the_bank_in_the_checkpoint_resume_differs(tmp_path):
    """The state matters: a resume that lost the bank gives other weights."""
    full = toy_runner(tmp_path / 'full', epochs=2, hooks=[RecordK()], name='f')
    full.train()
    first = toy_runner(tmp_path / 'split', epochs=1, hooks=[RecordK()], name='s1')
    first.train()
    ckpt = load_local_checkpoint(str(tmp_path / 'split' / 'epoch_1.pth'))
    del ckpt['mwam']
    torch.save(ckpt, tmp_path / 'split' / 'no_bank.pth')
    second = toy_runner(
        tmp_path / 'split',
        epochs=2,
        hooks=[RecordK()],
        name='s2',
        resume=True,
        load_from=str(tmp_path / 'split' / 'no_bank.pth'))
    second.train()
    assert hook_of(second, RecordK).history[0] != pytest.approx(
        hook_of(full, RecordK).history[4], rel=1e-9)


@pytest.mark.parametrize('apply', ['grad', 'update'])
def test_gradient_accumulation(tmp_path, apply):
    runner = toy_runner(
        tmp_path, epochs=1, hooks=[RecordK(apply=apply)], accumulate=2, name=apply)
    before = params_of(runner)
    runner.train()
    hook = hook_of(runner, RecordK)
    assert len(hook.history) == 4  # every micro-batch gets its own weights
    assert not same_params(before, params_of(runner))
    if apply == 'update':  # the accumulator is emptied at every optimizer step
        assert hook.modulations == {}  # removed after training
        assert hook.accumulated_counts == [1, 0, 1, 0]


def test_update_mode_with_accumulation_averages_the_weights(tmp_path):
    runner = toy_runner(
        tmp_path,
        epochs=1,
        hooks=[MWAMHook(apply='update')],
        accumulate=2,
        length=8,
        name='avg')
    seen = []
    original = UpdateModulation.scale_update

    def spy(self, optimizer, args, kwargs):
        seen.append({n: self.k_sum[n] / self.k_count for n in self.k_sum})
        return original(self, optimizer, args, kwargs)

    with mock.patch.object(UpdateModulation, 'scale_update', spy):
        runner.train()
    assert len(seen) == 1  # 2 micro-batches -> 1 optimizer step
    assert set(seen[0]) == {'rgb', 'thermal'}


def test_clipping_acts_on_the_scaled_gradients(tmp_path):
    """grad mode scales before the optimizer wrapper clips: the clipped total
    norm is the limit, whatever the weights."""
    runner = toy_runner(
        tmp_path,
        epochs=1,
        hooks=[MWAMHook()],
        name='clip',
        clip_grad=dict(max_norm=1e-3),
        length=4)
    norms = []
    runner.train_loop  # noqa: B018  (builds the loop and the optimizer wrapper)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    optimizer = runner.optim_wrapper.optimizer
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: norms.append(
        torch.norm(
            torch.stack([
                p.grad.norm() for g in opt.param_groups for p in g['params']
                if p.grad is not None
            ]))))
    runner.train()
    assert len(norms) == 1
    assert norms[0].item() == pytest.approx(1e-3, rel=1e-3)
    assert all(torch.isfinite(v).all() for v in params_of(runner).values())


def test_load_from_starts_a_new_bank_and_resume_continues_it(tmp_path):
    """mmengine calls after_load_checkpoint for load_from and for resume; the
    bank is restored only when resuming (as EMAHook), not into a fine-tuning
    run on maybe other data."""
    first = toy_runner(tmp_path / 'first', epochs=1, hooks=[MWAMHook()], name='lf1')
    first.train()
    checkpoint = str(tmp_path / 'first' / 'epoch_1.pth')
    assert load_local_checkpoint(checkpoint)['mwam']['steps'] == 4
    fine = toy_runner(
        tmp_path / 'fine',
        epochs=1,
        hooks=[MWAMHook()],
        name='lf2',
        load_from=checkpoint)
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        fine.train()
    assert hook_of(fine, MWAMHook).weighting.state_dict()['steps'] == 4  # fresh
    assert any('not restored' in str(c) for c in log.call_args_list)
    resumed = toy_runner(
        tmp_path / 'first',
        epochs=2,
        hooks=[MWAMHook()],
        name='lf3',
        resume=True,
        load_from=checkpoint)
    resumed.train()
    assert hook_of(resumed, MWAMHook).weighting.state_dict()['steps'] == 8
