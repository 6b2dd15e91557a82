"""OGMGEHook driven directly and in a Runner, on one and on two gloo ranks."""
import copy
import os
import os.path as osp
import socket
import subprocess
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper

import mwam_mm  # noqa: F401
from mwam_mm.engine import OGMGEHook
from mwam_mm.engine.modulation import ParameterGradientModulation
from mwam_mm.engine.ogm_ge_hook import ogm_ge_coefficients, training_epoch
from tests.helpers.ogm_ge_dist import ALPHA, toy_ogm_runner
from tests.helpers.runners import fresh_message_hub
from tests.helpers.toy import ToyRGBTModel, toy_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# rgb dominates: s_rgb = 0.6, s_thermal = 0.3, rho = 2
SCORES = dict(rgb=(2.4, 4), thermal=(1.2, 4))
# 1 - tanh(x), by hand (tanh x = (e^2x - 1) / (e^2x + 1)):
ONE_MINUS_TANH = {
    0.1: 0.9003320053750442,
    0.2: 0.802624679775096,
    1.0: 0.23840584404423515
}


def make_runner(model, optimizer='SGD', epoch=0, it=0, accumulate=1):
    opt_cls = getattr(torch.optim, optimizer)
    kwargs = dict(lr=0.1) if optimizer == 'SGD' else dict(lr=0.01)
    optim = OptimWrapper(
        opt_cls(model.parameters(), **kwargs), accumulative_counts=accumulate)
    optim.initialize_count_status(model, 0, 100)
    hub = fresh_message_hub('ogm')
    return SimpleNamespace(
        model=model, optim_wrapper=optim, message_hub=hub, epoch=epoch, iter=it)


def start(hook, runner):
    hook.before_run(runner)
    hook.before_train(runner)


def captured_step(hook, runner, batch):
    """One training iteration; returns the gradients the optimizer steps with
    (read by a step pre-hook registered after the hook's own)."""
    seen = {}

    def capture(optimizer, args, kwargs):
        for name, p in runner.model.named_parameters():
            seen[name] = p.grad.clone()

    handle = runner.optim_wrapper.optimizer.register_step_pre_hook(capture)
    if hook is not None:
        hook.before_train_iter(runner, 0)
    losses = runner.model(batch, mode='loss')
    runner.optim_wrapper.update_params(sum(v for k, v in losses.items() if 'loss' in k))
    if hook is not None:
        hook.after_train_iter(runner, 0)
    handle.remove()
    return seen


def twin(**kwargs):
    torch.manual_seed(0)
    model = ToyRGBTModel(modality_scores=SCORES, **kwargs)
    return model, copy.deepcopy(model)


# ----------------------------------------------------------- coefficients
def test_coefficients_original_rho_both_branches():
    k_a, k_b, rho = ogm_ge_coefficients(0.6, 0.3, 0.1)  # a dominates
    assert rho == 2.0 and k_b == 1.0
    assert k_a == pytest.approx(ONE_MINUS_TANH[0.2], abs=1e-15)
    k_a, k_b, rho = ogm_ge_coefficients(0.3, 0.6, 0.1)  # b dominates
    assert rho == 0.5 and k_a == 1.0
    assert k_b == pytest.approx(ONE_MINUS_TANH[0.2], abs=1e-15)
    # rho = 1 takes the else branch: b is damped by 1 - tanh(alpha), the jump
    k_a, k_b, rho = ogm_ge_coefficients(0.4, 0.4, 1.0)
    assert (k_a, rho) == (1.0, 1.0)
    assert k_b == pytest.approx(ONE_MINUS_TANH[1.0], abs=1e-15)


def test_coefficients_minus_one_both_branches():
    k_a, k_b, _ = ogm_ge_coefficients(0.6, 0.3, 0.1, 'minus_one')  # rho 2
    assert k_a == pytest.approx(ONE_MINUS_TANH[0.1], abs=1e-15) and k_b == 1.0
    k_a, k_b, _ = ogm_ge_coefficients(0.3, 0.6, 0.1, 'minus_one')  # 1/rho = 2
    assert k_a == 1.0 and k_b == pytest.approx(ONE_MINUS_TANH[0.1], abs=1e-15)
    assert ogm_ge_coefficients(0.4, 0.4, 1.0, 'minus_one') == (1.0, 1.0, 1.0)


def test_undefined_scores_leave_k_at_one():
    nan = float('nan')
    assert ogm_ge_coefficients(nan, 0.3, 0.1) == (1.0, 1.0, None)
    assert ogm_ge_coefficients(0.3, 0.0, 0.1) == (1.0, 1.0, None)


# --------------------------------------------------- the hook, one process
def test_hook_pools_scores_and_logs_k_rho_and_scores():
    model, reference = twin()
    hook = OGMGEHook(alpha=0.1, ge=False)
    runner = make_runner(model)
    start(hook, runner)
    assert model.modality_scores_source == 'view'  # set once, when training starts
    grads = captured_step(hook, runner, toy_batch())
    assert hook.source == 'view'  # 'auto' without auxiliary heads
    assert hook.weights['rgb'] == pytest.approx(ONE_MINUS_TANH[0.2], abs=1e-12)
    assert hook.weights['thermal'] == 1.0
    hub = runner.message_hub.log_scalars
    assert hub['train/ogm_rho'].current() == pytest.approx(2.0, abs=1e-12)
    assert hub['train/ogm_score_rgb'].current() == pytest.approx(0.6, abs=1e-12)
    assert hub['train/ogm_score_thermal'].current() == pytest.approx(0.3, abs=1e-12)
    assert hub['train/ogm_k_rgb'].current() == hook.weights['rgb']
    assert hub['train/ogm_k_thermal'].current() == 1.0
    # the logged norm is the modulated gradient's, as the optimizer gets it
    norm = torch.cat([
        grads[n].flatten() for n in grads if n.startswith('backbone.streams.rgb.')
    ]).norm()
    assert hub['train/grad_norm_rgb'].current() == pytest.approx(float(norm), rel=1e-5)
    # set once through the model's method, not per iteration; undone at the end
    assert model.modality_scores_source == 'view'
    hook.after_train(runner)
    assert model.modality_scores_source is None
    assert hook._handles == [] and hook.modulations == {}
    # the checkpoint is an ordinary model
    assert model.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.parametrize('params', ['conv', 'matrix'])
def test_which_parameters_are_modulated(params):
    stream = dict(norm=True, mix=True)
    model, reference = twin(stream=stream, fusion='ConcatConvFusion')
    hook = OGMGEHook(alpha=0.1, params=params, ge=False)
    runner = make_runner(model)
    start(hook, runner)
    batch = toy_batch()
    got = captured_step(hook, runner, batch)
    want = captured_step(None, make_runner(reference), batch)
    k = ONE_MINUS_TANH[0.2]
    scaled = {'backbone.streams.rgb.conv1.weight', 'backbone.streams.rgb.conv2.weight'}
    if params == 'matrix':
        scaled.add('backbone.streams.rgb.mix.weight')
    assert any('fusions' in n and n.endswith('weight') and got[n].dim() == 4
               for n in got)  # the fusion has a conv kernel, left alone
    for name in got:
        if name in scaled:
            torch.testing.assert_close(got[name], want[name] * k, rtol=1e-6, atol=0)
            assert not torch.equal(got[name], want[name])
        else:  # BN, biases, mix (conv mode), thermal (k = 1), fusion, head
            assert torch.equal(got[name], want[name]), name
    selected = hook.modulations['grad'].params
    assert {id(p)
            for p in selected['rgb']
            } == {id(p)
                  for n, p in model.named_parameters() if n in scaled}


def test_conv_mode_on_a_branch_without_conv_kernels_is_a_clear_error():
    model, _ = twin(stream=dict(mix=True))
    hook = OGMGEHook(
        branches=dict(
            rgb='backbone.streams.rgb.mix', thermal='backbone.streams.'
            'thermal.mix'))
    with pytest.raises(ValueError, match="branch 'rgb' has no 4-D .*params='matrix'"):
        start(hook, make_runner(model))


def test_ge_noise_on_both_modalities_other_parameters_exact():
    model, reference = twin(stream=dict(norm=True))
    hook = OGMGEHook(alpha=0.1, ge=True, seed=7)
    runner = make_runner(model)
    start(hook, runner)
    batch = toy_batch()
    got = captured_step(hook, runner, batch)
    want = captured_step(None, make_runner(reference), batch)
    kernels = [n for n in got if n.startswith('backbone.streams') and got[n].dim() == 4]
    assert len(kernels) == 4
    for name in got:
        if name in kernels:  # k g + noise: differs for both modalities
            k = hook.weights[name.split('.')[2]]
            assert not torch.allclose(got[name], want[name] * k)
        else:
            assert torch.equal(got[name], want[name]), name


def test_ge_noise_standard_deviation_and_seeding():
    big = nn.Conv2d(64, 64, 3)  # 36864 gradient entries
    grad = torch.randn(big.weight.shape, generator=torch.Generator().manual_seed(1))
    grad = grad * 0.03 + 0.01
    k = 0.5

    def noise_of(seed):
        big.weight.grad = grad.clone()
        generator = torch.Generator().manual_seed(seed)
        modulation = ParameterGradientModulation(
            dict(rgb=big),
            lambda name: k,
            select=lambda p: p.dim() == 4,
            noise=lambda device: generator)
        modulation.active = True
        modulation.apply(dict(rgb=[big.weight]))
        return big.weight.grad - k * grad

    noise = noise_of(0)
    # N(0, std(g)), std taken before the scaling by k
    assert float(noise.std()) == pytest.approx(float(grad.std()), rel=0.02)
    assert abs(float(noise.mean())) < 3 * float(grad.std()) / grad.numel()**0.5
    torch.testing.assert_close(noise_of(0), noise)  # same seed: same noise
    assert not torch.allclose(noise_of(1), noise)
    # inactive or weight None: untouched
    big.weight.grad = grad.clone()
    modulation = ParameterGradientModulation(dict(rgb=big), lambda name: None)
    modulation.active = True
    modulation.apply(dict(rgb=[big.weight]))
    assert torch.equal(big.weight.grad, grad)


def test_noise_is_a_function_of_seed_and_iteration():
    batch = toy_batch()

    def grads(seed, it):
        torch.manual_seed(0)
        model = ToyRGBTModel(modality_scores=SCORES)
        hook = OGMGEHook(seed=seed)
        runner = make_runner(model, it=it)
        start(hook, runner)
        torch.manual_seed(seed + it + 100)  # the global generator plays no part
        return captured_step(hook, runner, batch)

    first = grads(3, 5)
    for name, value in grads(3, 5).items():
        assert torch.equal(value, first[name])
    key = 'backbone.streams.thermal.conv1.weight'
    assert not torch.equal(grads(3, 6)[key], first[key])
    assert not torch.equal(grads(4, 5)[key], first[key])


@pytest.mark.parametrize('by_epoch', [True, False])
def test_window(by_epoch):
    batch = toy_batch()
    inside = []
    for position in range(4):
        model, reference = twin()
        hook = OGMGEHook(window=(1, 3), by_epoch=by_epoch)
        runner = make_runner(
            model, epoch=position if by_epoch else 0, it=0 if by_epoch else position)
        start(hook, runner)
        sources = []
        model.backbone.register_forward_pre_hook(
            lambda m, a: sources.append(model.modality_scores_source))
        got = captured_step(hook, runner, batch)
        want = captured_step(None, make_runner(reference), batch)
        same = all(torch.equal(got[n], want[n]) for n in got)
        inside.append(not same)
        hub = runner.message_hub.log_scalars
        if same:  # no scaling, no noise, no scores asked for, k logged as 1
            assert sources[0] is None and hub['train/ogm_k_rgb'].current() == 1.0
            assert 'train/ogm_rho' not in hub
        else:
            assert sources[0] == 'view'
    assert inside == [False, True, True, False]


def test_epoch_of_an_iteration_based_loop():
    from mmengine.runner import IterBasedTrainLoop
    loop = mock.Mock(spec=IterBasedTrainLoop)
    runner = SimpleNamespace(train_loop=loop, iter=9, epoch=0, train_dataloader=[0] * 4)
    assert training_epoch(runner) == 2
    assert training_epoch(SimpleNamespace(epoch=3, iter=9)) == 3


def test_accumulated_micro_batches_give_one_coefficient_applied_once():
    model, reference = twin()
    hook = OGMGEHook(alpha=0.1, ge=False)
    runner = make_runner(model, accumulate=2)
    start(hook, runner)
    batches = [toy_batch(seed=1), toy_batch(seed=2)]
    # micro-batch 1: rho 3 alone; 2: rho 1 alone; pooled: 4/8 over 2/8 = 2
    model.modality_scores = dict(rgb=(3.0, 4), thermal=(1.0, 4))
    runner.iter = 0
    assert captured_step(hook, runner, batches[0]) == {}  # no step yet
    assert hook.weights == {}
    model.modality_scores = dict(rgb=(1.0, 4), thermal=(1.0, 4))
    runner.iter = 1
    got = captured_step(hook, runner, batches[1])
    assert hook.rho == pytest.approx(2.0, abs=1e-12)
    ref_runner = make_runner(reference, accumulate=2)
    captured_step(None, ref_runner, batches[0])
    want = captured_step(None, ref_runner, batches[1])
    k = ONE_MINUS_TANH[0.2]
    for name in got:
        scale = k if name.startswith('backbone.streams.rgb.') and \
            name.endswith('weight') else 1.0
        torch.testing.assert_close(got[name], want[name] * scale, rtol=1e-6, atol=0)


def test_scores_are_all_reduced_before_k():
    model, _ = twin()
    hook = OGMGEHook(alpha=0.1, ge=False)
    runner = make_runner(model)
    start(hook, runner)
    reduced = []

    def fake_all_reduce(data, op):  # another rank: rgb 0/4, thermal 1.2/4
        reduced.append(data.clone())
        data += torch.tensor([[0.0, 1.2], [4.0, 4.0]], dtype=data.dtype)

    with mock.patch('mwam_mm.engine.ogm_ge_hook.all_reduce', fake_all_reduce):
        captured_step(hook, runner, toy_batch())
    torch.testing.assert_close(
        reduced[0], torch.tensor([[2.4, 1.2], [4.0, 4.0]], dtype=torch.float64))
    # pooled: rgb 2.4 / 8 = 0.3 and thermal 2.4 / 8 = 0.3: rho 1 (else branch)
    assert hook.rho == pytest.approx(1.0, abs=1e-12)
    assert hook.weights['rgb'] == 1.0
    assert hook.weights['thermal'] == pytest.approx(ONE_MINUS_TANH[0.1], abs=1e-12)


def test_no_scoring_units_anywhere_leaves_k_at_one():
    model, reference = twin()
    model.modality_scores = dict(rgb=(0.0, 0), thermal=(1.0, 4))
    hook = OGMGEHook(ge=False)
    runner = make_runner(model)
    start(hook, runner)
    got = captured_step(hook, runner, toy_batch())
    want = captured_step(None, make_runner(reference), toy_batch())
    assert hook.weights == dict(rgb=1.0, thermal=1.0) and hook.rho is None
    assert all(torch.equal(got[n], want[n]) for n in got)
    hub = runner.message_hub.log_scalars
    assert 'train/ogm_rho' not in hub and 'train/ogm_score_rgb' not in hub
    assert hub['train/ogm_score_thermal'].current() == 0.25


def test_adaptive_optimizer_warns_once():
    model, _ = twin()
    with mock.patch('mwam_mm.engine.ogm_ge_hook.print_log') as log:
        start(OGMGEHook(), make_runner(model, 'AdamW'))
    warnings = [c for c in log.call_args_list if 'adaptive optimizer' in c.args[0]]
    assert len(warnings) == 1 and 'AdamW' in warnings[0].args[0]
    with mock.patch('mwam_mm.engine.ogm_ge_hook.print_log') as log:
        start(OGMGEHook(), make_runner(model, 'SGD'))
    assert not [c for c in log.call_args_list if 'adaptive' in c.args[0]]


class NoOutputs(BaseModel):
    """A two-stream model without per-modality predictions."""

    def __init__(self):
        super().__init__()
        self.backbone = ToyRGBTModel().backbone

    def forward(self, inputs, data_samples=None, mode='loss'):
        return {}


def test_errors():
    with pytest.raises(ValueError, match='alpha must be a number > 0, got 0'):
        OGMGEHook(alpha=0)
    with pytest.raises(ValueError, match='alpha must be a number > 0, got -0.5'):
        OGMGEHook(alpha=-0.5)
    with pytest.raises(ValueError, match=r"window \(3, 3\) is empty"):
        OGMGEHook(window=(3, 3))
    with pytest.raises(ValueError, match='window must be'):
        OGMGEHook(window=5)
    with pytest.raises(ValueError, match="rho_mode must be .* got 'minus'"):
        OGMGEHook(rho_mode='minus')
    with pytest.raises(ValueError, match="params must be .* got 'all'"):
        OGMGEHook(params='all')
    with pytest.raises(ValueError, match="source must be .* got 'fused'"):
        OGMGEHook(source='fused')
    with pytest.raises(TypeError, match='OGMGEHook needs per-modality predictions'):
        start(OGMGEHook(), make_runner(NoOutputs()))
    model, _ = twin()
    with pytest.raises(ValueError, match="source='aux' needs auxiliary"):
        start(OGMGEHook(source='aux'), make_runner(model))
    torch.manual_seed(0)
    three = ToyRGBTModel(modalities=[
        dict(name='rgb', channels=3),
        dict(name='thermal', channels=1),
        dict(name='depth', channels=1)
    ])
    with pytest.raises(
            ValueError,
            match=r'exactly two modalities .* has 3: '
            r"\['rgb', 'thermal', 'depth'\]"):
        start(OGMGEHook(), make_runner(three))


def test_a_model_that_gives_no_scores_is_a_clear_error():
    model, _ = twin()
    model.modality_scores = None
    hook = OGMGEHook()
    runner = make_runner(model)
    start(hook, runner)
    hook.before_train_iter(runner, 0)
    with mock.patch.object(ToyRGBTModel, '_modality_scores', lambda *a: {}), \
            pytest.raises(KeyError, match=r"no \['modality_score_rgb'"):
        model(toy_batch(), mode='loss')
    hook.before_train_iter(runner, 0)
    with pytest.raises(RuntimeError, match="mode='loss' did not run"):
        hook.after_train_iter(runner, 0)


# ---------------------------------------------------------------- Runner
def test_runner_with_aux_heads_and_computed_scores(tmp_path):
    runner = toy_ogm_runner(
        tmp_path,
        'aux', [OGMGEHook(alpha=0.3, rho_mode='minus_one', window=(0, 1))],
        model=dict(aux_losses=True),
        epochs=2,
        accumulate=2)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, OGMGEHook))
    assert hook.source == 'aux'
    hub = runner.message_hub
    k_rgb = hub.get_scalar('train/ogm_k_rgb').data[0]
    k_thermal = hub.get_scalar('train/ogm_k_thermal').data[0]
    rho = hub.get_scalar('train/ogm_rho').data[0]
    # epoch 0: 4 iterations, 2 steps of 2 micro-batches; epoch 1: outside
    assert len(rho) == 2 and len(k_rgb) == 2 + 4
    for r, ka, kb in zip(rho, k_rgb, k_thermal):
        assert (ka, kb) == pytest.approx(
            ogm_ge_coefficients(r, 1.0, 0.3, 'minus_one')[:2], abs=1e-12)
    assert list(k_rgb[2:]) == list(k_thermal[2:]) == [1.0] * 4
    # the model's scores per micro-batch, logged by mmengine: pooled per step
    sums = {
        m: hub.get_scalar(f'train/modality_score_{m}').data[0]
        for m in ('rgb', 'thermal')
    }
    assert len(sums['rgb']) == 4  # asked for in the window only
    assert rho[0] == pytest.approx(
        (sums['rgb'][0] + sums['rgb'][1]) / (sums['thermal'][0] + sums['thermal'][1]),
        rel=1e-6)
    model = runner.model
    assert model.modality_scores_source is None


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def test_two_gloo_ranks_share_k_and_noise(tmp_path):
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    procs = [
        subprocess.Popen([
            sys.executable, '-m', 'tests.helpers.ogm_ge_dist',
            str(rank), '2', port,
            str(tmp_path)
        ],
                         cwd=ROOT,
                         env=env,
                         stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT,
                         text=True) for rank in (0, 1)
    ]
    logs = []
    try:
        for proc in procs:
            logs.append(proc.communicate(timeout=120)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, log in zip(procs, logs):
        assert proc.returncode == 0, log[-4000:]
    ranks = [
        torch.load(osp.join(tmp_path, f'rank{r}.pth'), weights_only=True)
        for r in (0, 1)
    ]
    noisy, plain = (ranks[0]['ge1'], ranks[1]['ge1']), (ranks[0]['ge0'],
                                                        ranks[1]['ge0'])
    assert noisy[0]['indices'] != noisy[1]['indices']  # different data per rank
    # scores pooled over both ranks: rho 2 on each (rank 0 alone: 3, rank 1: 1)
    for run in noisy + plain:
        assert run['rho'] == [2.0] * 3
        assert run['k_rgb'] == [
            pytest.approx(
                1 - torch.tanh(torch.tensor(ALPHA * 2.0, dtype=torch.float64)).item(),
                abs=1e-12)
        ] * 3
        assert run['k_thermal'] == [1.0] * 3
    for a, b in (noisy, plain):  # every rank the same parameters
        for name, value in a['params'].items():
            assert torch.equal(value, b['params'][name]), name
    # and the noise did something: other parameters than without it
    differs = [
        n for n, v in noisy[0]['params'].items()
        if not torch.equal(v, plain[0]['params'][n])
    ]
    assert 'backbone.streams.thermal.conv1.weight' in differs
