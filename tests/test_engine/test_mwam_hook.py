"""MWAMHook driven directly: exact scaling per mode, shared parameters untouched."""
import copy
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

import mwam_mm  # noqa: F401
from mwam_mm.engine import MWAMHook
from tests.helpers.runners import fresh_message_hub
from tests.helpers.toy import ToyRGBTModel, toy_batch


def make_runner(model, optimizer='SGD'):
    opt_cls = getattr(torch.optim, optimizer)
    kwargs = dict(lr=0.1, momentum=0.9) if optimizer == 'SGD' else dict(lr=0.01)
    optim = OptimWrapper(opt_cls(model.parameters(), **kwargs))
    hub = fresh_message_hub('toy')
    return SimpleNamespace(model=model, optim_wrapper=optim, message_hub=hub)


def start(hook, runner):
    """What mmengine's Runner.train does before the first iteration."""
    hook.before_run(runner)
    hook.before_train(runner)


def train_step(hook, runner, batch):
    if hook is not None:
        hook.before_train_iter(runner, 0)
    losses = runner.model(batch, mode='loss')
    loss = sum(losses.values())
    runner.optim_wrapper.update_params(loss)
    if hook is not None:
        hook.after_train_iter(runner, 0)
    return losses


def branch_params(model, name):
    return list(model.backbone.streams[name].parameters())


def shared_params(model):
    return list(model.head.parameters())


@pytest.fixture
def twin_models():
    torch.manual_seed(0)
    model = ToyRGBTModel()
    return model, copy.deepcopy(model)


def grads_after(model, batch, hook=None, optimizer='SGD'):
    runner = make_runner(model, optimizer)
    if hook is not None:
        start(hook, runner)
        hook.before_train_iter(runner, 0)
    losses = model(batch, mode='loss')
    sum(losses.values()).backward()
    return runner


def test_preferred_modality_gets_the_smaller_weight(twin_models):
    model, _ = twin_models
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch())
    frm = {k: float(v) for k, v in hook.frm_values.items()}
    assert frm['rgb'] > frm['thermal']  # smooth RGB vs noisy thermal
    assert hook.weights['rgb'] < 1.0 < hook.weights['thermal']
    scalars = runner.message_hub.log_scalars
    for name in ('rgb', 'thermal'):
        assert scalars[f'train/mwam_k_{name}'].current() == hook.weights[name]
        assert scalars[f'train/mwam_frm_{name}'].current() == pytest.approx(frm[name])


def test_grad_mode_scales_branch_gradients_by_exactly_k(twin_models):
    model, reference = twin_models
    batch = toy_batch()
    hook = MWAMHook(apply='grad')
    grads_after(model, batch, hook)
    grads_after(reference, batch)
    for name in ('rgb', 'thermal'):
        k = hook.weights[name]
        assert k != pytest.approx(1.0)
        for p, r in zip(branch_params(model, name), branch_params(reference, name)):
            torch.testing.assert_close(p.grad, r.grad * k, rtol=1e-5, atol=1e-8)
    for p, r in zip(shared_params(model), shared_params(reference)):
        torch.testing.assert_close(p.grad, r.grad)  # shared: untouched
    fusion = list(model.backbone.fusions.parameters())
    assert fusion == []  # AddFusion: nothing else is shared


@pytest.mark.parametrize('optimizer', ['SGD', 'AdamW'])
def test_update_mode_scales_branch_updates_by_exactly_k(twin_models, optimizer):
    model, reference = twin_models
    batch = toy_batch()
    before = copy.deepcopy(model)
    hook = MWAMHook(apply='update')
    runner = make_runner(model, optimizer)
    start(hook, runner)
    train_step(hook, runner, batch)
    train_step(None, make_runner(reference, optimizer), batch)
    for name in ('rgb', 'thermal'):
        k = hook.weights[name]
        for p, r, b in zip(
                branch_params(model, name), branch_params(reference, name),
                branch_params(before, name)):
            torch.testing.assert_close(p - b, (r - b) * k, rtol=1e-4, atol=1e-7)
    for p, r in zip(shared_params(model), shared_params(reference)):
        torch.testing.assert_close(p, r)


def test_loss_mode_scales_only_per_modality_losses():
    torch.manual_seed(0)
    model = ToyRGBTModel(aux_losses=True)
    reference = copy.deepcopy(model)
    batch = toy_batch()
    hook = MWAMHook(apply='loss')
    runner = make_runner(model)
    start(hook, runner)
    hook.before_train_iter(runner, 0)
    scaled = model(batch, mode='loss')
    plain = reference(batch, mode='loss')
    torch.testing.assert_close(scaled['loss'], plain['loss'])
    for name in ('rgb', 'thermal'):
        torch.testing.assert_close(scaled[f'loss_aux_{name}'],
                                   plain[f'loss_aux_{name}'] * hook.weights[name])
    hook.after_train_iter(runner, 0)
    # outside training iterations the losses are the model's own
    torch.testing.assert_close(
        model(batch, mode='loss')['loss_aux_rgb'], plain['loss_aux_rgb'])


def test_hybrid_mode_scales_gradients_and_losses():
    torch.manual_seed(0)
    model = ToyRGBTModel(aux_losses=True)
    hook = MWAMHook(apply='hybrid')
    assert hook.apply == ('grad', 'loss')
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch())
    assert set(hook.weights) == {'rgb', 'thermal'}


def test_loss_mode_without_per_modality_losses_is_a_clear_error(twin_models):
    model, _ = twin_models
    hook = MWAMHook(apply='loss')
    runner = make_runner(model)
    start(hook, runner)
    hook.before_train_iter(runner, 0)
    with pytest.raises(KeyError, match="end with '_<modality>'"):
        model(toy_batch(), mode='loss')


def test_grad_mode_warns_once_with_an_adaptive_optimizer(twin_models):
    model, _ = twin_models
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        start(MWAMHook(apply='grad'), make_runner(model, 'AdamW'))
    warnings = [c for c in log.call_args_list if 'adaptive optimizer' in c.args[0]]
    assert len(warnings) == 1
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        start(MWAMHook(apply='update'), make_runner(model, 'AdamW'))
    assert not [c for c in log.call_args_list if 'adaptive' in c.args[0]]


def test_non_finite_frm_falls_back_to_weight_one(twin_models):
    model, reference = twin_models
    batch = toy_batch()
    real = mwam_mm.frm.frequency_ratio_metric

    def broken(images, **kwargs):
        value = real(images, **kwargs)
        return value * float('nan') if images.shape[1] == 1 else value

    hook = MWAMHook(apply='grad')
    with mock.patch('mwam_mm.engine.mwam_hook.frequency_ratio_metric', broken), \
            mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        grads_after(model, batch, hook)
    assert hook.weights['thermal'] == 1.0
    assert any('non-finite FRM' in c.args[0] for c in log.call_args_list)
    grads_after(reference, batch)
    for p, r in zip(
            branch_params(model, 'thermal'), branch_params(reference, 'thermal')):
        assert torch.isfinite(p.grad).all()
        torch.testing.assert_close(p.grad, r.grad)


def test_nothing_runs_outside_training_iterations(twin_models):
    model, _ = twin_models
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    with mock.patch('mwam_mm.engine.mwam_hook.frequency_ratio_metric') as frm:
        model.eval()
        with torch.no_grad():
            model(toy_batch(), mode='predict')
        frm.assert_not_called()
    hook.after_train(runner)
    assert hook._handles == []


def test_checkpoint_is_an_ordinary_model(twin_models):
    model, reference = twin_models
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch())
    hook.after_train(runner)
    assert model.state_dict().keys() == reference.state_dict().keys()
    assert sum(p.numel() for p in model.parameters()) == \
        sum(p.numel() for p in reference.parameters())
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    assert set(checkpoint) == {'mwam'}
    assert set(checkpoint['mwam']['bank']) == {'rgb', 'thermal'}


def test_named_branches_and_bad_paths(twin_models):
    model, _ = twin_models
    hook = MWAMHook(
        branches=dict(rgb='backbone.streams.rgb', thermal='backbone.streams.thermal'))
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch())
    with pytest.raises(
            AttributeError,
            match='no module .backbone.rgb_stream.*'
            'Available modules: .*backbone.streams'):
        start(
            MWAMHook(
                branches=dict(
                    rgb='backbone.rgb_stream', thermal='backbone.streams.thermal')),
            make_runner(model))
    with pytest.raises(
            ValueError, match="branch 'thermal' .* lies inside branch "
            "'rgb'"):
        start(
            MWAMHook(
                branches=dict(
                    rgb='backbone.streams.rgb', thermal='backbone.streams.rgb.conv1')),
            make_runner(model))


def test_frm_of_a_named_stage_output(twin_models):
    model, _ = twin_models
    hook = MWAMHook(frm_source='conv1')
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch())
    assert set(hook.weights) == {'rgb', 'thermal'}
    with pytest.raises(AttributeError, match="frm_source 'layer9'"):
        start(MWAMHook(frm_source='layer9'), make_runner(model))


def test_bad_arguments():
    with pytest.raises(ValueError, match='apply must be one of'):
        MWAMHook(apply='gradients')
    with pytest.raises(ValueError, match='choose one of them'):
        MWAMHook(apply=['grad', 'update'])
    with pytest.raises(ValueError, match='unknown MWAM preset'):
        MWAMHook(preset='best')
    with pytest.raises(ValueError, match='unknown frm option'):
        MWAMHook(frm=dict(patch=8))


def test_branch_names_must_be_modalities_and_whole_streams(twin_models):
    model, _ = twin_models
    with pytest.raises(
            ValueError,
            match=r"branch name\(s\) \['ir'\] are not "
            r"modalities of the layout \['rgb', 'thermal'\]"):
        start(
            MWAMHook(
                branches=dict(
                    rgb='backbone.streams.rgb', ir='backbone.streams.thermal')),
            make_runner(model))
    # two consecutive stages of one stream: the second gets features, not an image
    hook = MWAMHook(
        branches=dict(
            rgb='backbone.streams.rgb.conv1', thermal='backbone.streams.rgb.conv2'))
    runner = make_runner(model)
    start(hook, runner)
    with pytest.raises(
            ValueError,
            match="branch 'thermal' receives 4 channels, "
            "but modality 'thermal' has 1"):
        train_step(hook, runner, toy_batch())


def frm_of(hook, runner, batch, missing=None):
    """FRM of one forward; ``missing``: each sample's ``missing_modalities``,
    on the data samples the model gets (as feature-level dropout marks them)."""
    hook.before_train_iter(runner, 0)
    samples = None if missing is None else [
        BaseDataElement(metainfo=dict(missing_modalities=m)) for m in missing
    ]
    runner.model(batch, samples, mode='loss')
    return {n: float(v) for n, v in hook.frm_values.items()}


def test_blank_or_missing_samples_do_not_count_in_frm(twin_models):
    model, _ = twin_models
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    batch = toy_batch(batch=4)
    full = frm_of(hook, runner, batch)
    # the same three samples' FRM, scaled to the batch of four
    three = frm_of(hook, runner, batch[:3])
    blanked = batch.clone()
    blanked[3, 3:] = -2.0  # thermal of the last sample: a black frame
    blanked[3, 3:, :, -4:] = 0.0  # with padding
    got = frm_of(hook, runner, blanked)
    assert got['thermal'] == pytest.approx(three['thermal'] * 4 / 3, rel=1e-9)
    assert got['rgb'] == pytest.approx(full['rgb'], rel=1e-12)
    assert hook.frm_counts == dict(rgb=4, thermal=3)
    # known missing (feature-level dropout): pixels intact, sample not counted
    got = frm_of(hook, runner, batch, missing=[[]] * 3 + [['thermal']])
    assert got['thermal'] == pytest.approx(three['thermal'] * 4 / 3, rel=1e-9)
    assert got['thermal'] != pytest.approx(full['thermal'], rel=1e-3)


def test_a_modality_missing_everywhere_keeps_its_bank_and_weight(twin_models):
    model, _ = twin_models
    hook = MWAMHook()
    runner = make_runner(model)
    start(hook, runner)
    train_step(hook, runner, toy_batch(seed=1))
    train_step(hook, runner, toy_batch(seed=2))
    bank = dict(hook.weighting.bank)
    weights = dict(hook.weights)
    blanked = toy_batch(seed=3)
    blanked[:, 3:] = 0.0  # every thermal frame black
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        train_step(hook, runner, blanked)
    assert hook.weighting.bank['thermal'] == bank['thermal']
    assert hook.weights['thermal'] == weights['thermal']
    assert hook.weighting.bank['rgb'] != bank['rgb']  # RGB updated as usual
    assert not log.call_args_list  # expected, so no warning
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    resumed = MWAMHook()
    start(resumed, make_runner(copy.deepcopy(model)))
    runner._resume = True  # as a resumed run (load_from would start afresh)
    resumed.after_load_checkpoint(runner, checkpoint)
    assert resumed.last_weights == hook.weights
    assert resumed.weighting.bank == hook.weighting.bank


# -- FRM's patch grid in the hook ------------------------------------------------------


def offsets_used(hook, runner, iters, seed=0):
    used = []
    runner.seed = seed
    with mock.patch(
            'mwam_mm.engine.mwam_hook.frequency_ratio_metric',
            side_effect=lambda x, grid_offset, **kw: used.append(grid_offset) or torch.
            tensor(1.0, dtype=torch.float64)):
        for it in iters:
            runner.iter = it
            train_step(hook, runner, toy_batch())
    return used[::2]  # one per iteration (both modalities get the same grid)


def test_a_random_grid_moves_with_the_iteration_and_is_reproducible(twin_models):
    model, reference = twin_models
    hook, runner = MWAMHook(frm=dict(grid_offset='random')), make_runner(model)
    start(hook, runner)
    first = offsets_used(hook, runner, range(40))
    assert all(0 <= o < 8 for pair in first for o in pair)
    assert len(set(first)) > 10  # not one grid
    again = MWAMHook(frm=dict(grid_offset='random'))
    runner2 = make_runner(reference)
    start(again, runner2)
    assert offsets_used(again, runner2, range(40)) == first  # seed + iteration only
    assert offsets_used(again, runner2, range(40), seed=1) != first


@pytest.mark.parametrize('given,expected', [(0, (0, 0)), ('paper', (0, 0)), (4, (4, 4)),
                                            ((2, 5), (2, 5))])
def test_a_fixed_grid_offset(twin_models, given, expected):
    model, _ = twin_models
    hook, runner = MWAMHook(frm=dict(grid_offset=given)), make_runner(model)
    start(hook, runner)
    assert set(offsets_used(hook, runner, range(3))) == {expected}


@pytest.mark.parametrize('bad', [8, -1, (0, 9), 'sometimes'])
def test_a_grid_offset_outside_the_patch_is_refused_naming_it(bad):
    with pytest.raises(
            ValueError,
            match=f'grid_offset.*{bad!r}'.replace('(', r'\(').replace(')', r'\)')):
        MWAMHook(frm=dict(grid_offset=bad))
    with pytest.raises(ValueError, match=r'patch_size=4'):
        MWAMHook(frm=dict(grid_offset=5, patch_size=4))


def test_swap_weights_gives_each_branch_the_others_k(twin_models):
    model, reference = twin_models
    batch = toy_batch()
    plain, swapped = MWAMHook(frm=dict(grid_offset=0)), MWAMHook(
        frm=dict(grid_offset=0), swap_weights=True)
    runner_a, runner_b = make_runner(model), make_runner(reference)
    start(plain, runner_a)
    start(swapped, runner_b)
    train_step(plain, runner_a, batch)
    train_step(swapped, runner_b, batch)
    assert plain.weights['rgb'] != pytest.approx(plain.weights['thermal'])
    assert swapped.weights == dict(
        rgb=plain.weights['thermal'], thermal=plain.weights['rgb'])
    assert runner_b.message_hub.get_scalar('train/mwam_k_rgb').current() == \
        plain.weights['thermal']


# -- a dead camera in the training data (issue 20, point 6) ---------------------------


def dead_thermal_batch(seed):
    batch = toy_batch(seed=seed)
    batch[:, 3:] = 0.5  # every thermal frame constant
    return batch


def warnings_of(log):
    return [c.args[0] for c in log.call_args_list if 'blank' in c.args[0]]


def started_hook(model, **kwargs):
    hook = MWAMHook(**kwargs)
    runner = make_runner(model)
    start(hook, runner)
    return hook, runner


def test_a_camera_blank_from_the_start_is_reported_once_and_slows_nothing(twin_models):
    model, _ = twin_models
    hook, runner = started_hook(model, dead_camera_iters=3)
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        for seed in range(2):
            train_step(hook, runner, dead_thermal_batch(seed))
        assert not warnings_of(log)  # not yet 3 iterations
        for seed in range(2, 6):
            train_step(hook, runner, dead_thermal_batch(seed))
    reports = warnings_of(log)
    assert len(reports) == 1  # once, naming the modality and the count
    assert "modality 'thermal'" in reports[0] and 'last 3 iterations' in reports[0]
    assert "'rgb'" not in reports[0]
    # the only camera that sees has nothing to be balanced against: not slowed
    assert hook.weights == dict(rgb=1.0, thermal=1.0)
    assert list(hook.weighting.bank) == ['rgb']


def test_a_camera_blank_now_and_then_is_not_reported(twin_models):
    model, _ = twin_models
    hook, runner = started_hook(model, dead_camera_iters=2)
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        for seed in range(6):  # blank every other iteration: never 2 in a row
            batch = dead_thermal_batch(seed) if seed % 2 else toy_batch(seed=seed)
            train_step(hook, runner, batch)
    assert not warnings_of(log)
    assert hook.weights['rgb'] != 1.0  # balanced as usual


def test_a_modality_marked_missing_everywhere_is_not_a_dead_camera(twin_models):
    # feature-level dropout marks samples missing; their pixels are not blank
    model, _ = twin_models
    hook, runner = started_hook(model, dead_camera_iters=1)
    with mock.patch('mwam_mm.engine.mwam_hook.print_log') as log:
        for _ in range(3):
            frm_of(hook, runner, toy_batch(batch=2), missing=[['thermal']] * 2)
            hook.after_train_iter(runner, 0)
    assert not warnings_of(log)


@pytest.mark.parametrize('bad', [0, -1, 2.5, True])
def test_dead_camera_iters_is_checked(bad):
    with pytest.raises(ValueError, match='dead_camera_iters'):
        MWAMHook(dead_camera_iters=bad)


# -- FRM inputs smaller than a patch (issue 20, point 9) -------------------------------


def test_an_frm_input_smaller_than_a_patch_names_the_hook_and_option(twin_models):
    model, _ = twin_models
    hook, runner = started_hook(model, frm=dict(patch_size=8))
    with pytest.raises(ValueError) as error:
        train_step(hook, runner, toy_batch()[:, :, :9, :9])  # 9 - offset 3 < 8
    message = str(error.value)
    assert message.startswith('MWAMHook:') and "branch 'rgb'" in message
    assert 'frm.patch_size=8' in message and '9x9' in message
    assert '(3, 3)' in message  # the default odd grid offset
