"""BTWHook: weights by hand, their application, schedule, state, 2 ranks, errors."""
import os.path as osp
import socket
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
from mmengine.model import BaseModel

import mwam_mm  # noqa: F401
from mwam_mm.compat import load_local_checkpoint
from mwam_mm.engine import BTWHook
from mwam_mm.presence import weights_from_data_samples
from tests.helpers.runners import fresh_message_hub, hook_of
from tests.helpers.toy_btw import (BTWToyDataset, BTWToyModel, btw_runner, dist_worker,
                                   known_predictions)

NAMES = ('rgb', 'thermal')


# ----------------------------------------------------------- hand computation
def hand_mi(x, y, bins):
    """MI (nats) of a numpy joint histogram over each variable's range."""
    joint, _, _ = np.histogram2d(
        x, y, bins=bins, range=[[x.min(), x.max()], [y.min(), y.max()]])
    p = joint / joint.sum()
    px, py = p.sum(axis=1), p.sum(axis=0)
    mi = 0.0
    for a in range(bins):
        for b in range(bins):
            if p[a, b] > 0:
                mi += p[a, b] * np.log(p[a, b] / (px[a] * py[b]))
    return mi


def hand_new_weights(indices, version, top_k, bins, no_units=()):
    """``{sample_idx: [KLnorm * MI per modality]}`` for one refresh, in numpy."""
    kl = {m: [] for m in NAMES}
    score = {m: [] for m in NAMES}
    fused_score, kept = [], []
    for i in indices:
        if i in no_units:
            continue
        preds = {k: v.numpy() for k, v in known_predictions(i, version, top_k).items()}
        q = preds['fused']
        for m in NAMES:
            p = preds[m]
            kl[m].append(np.mean(np.sum(p * np.log(p / q), axis=1)))
            score[m].append(np.mean(p.max(axis=1)))
        fused_score.append(np.mean(q.max(axis=1)))
        kept.append(i)
    new = {i: [None, None] for i in kept}
    for j, m in enumerate(NAMES):
        values = np.array(kl[m])
        norm = (values - values.min()) / (values.max() - values.min())
        mi = hand_mi(np.array(score[m]), np.array(fused_score), bins)
        for i, n in zip(kept, norm):
            new[i][j] = n * mi
    return new


def smooth(old, new, s):
    out = dict(old)
    for i, values in new.items():
        prev = old.get(i, [1.0, 1.0])
        out[i] = [s * v + (1 - s) * o for v, o in zip(values, prev)]
    return out


def test_hand_mi_helper_matches_the_hook_estimator():
    from mwam_mm.engine.btw_hook import histogram_mutual_information
    rng = np.random.default_rng(0)
    x = rng.random(50)
    y = x + 0.1 * rng.random(50)
    assert histogram_mutual_information(torch.tensor(x), torch.tensor(y),
                                        4) == pytest.approx(
                                            hand_mi(x, y, 4), rel=1e-12)
    # independent-looking pairs give less information than dependent ones
    assert hand_mi(x, rng.random(50), 4) < hand_mi(x, y, 4)
    assert histogram_mutual_information(torch.ones(5), torch.tensor(x[:5]), 4) == 0.0


# ------------------------------------------------------------------ runner
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """3 epochs of 2 iterations, refreshed after epochs 1 and 2 (not 3, the
    last); sample 5 has no scoring units. BTW's own weights (no rescale), as
    the hand computation."""
    work = tmp_path_factory.mktemp('btw')
    runner = btw_runner(
        work,
        BTWHook(interval=1, smoothing=0.5, top_k=3, mi_bins=3, rescale=False),
        epochs=3,
        model=BTWToyModel(no_units=(5, )),
        name='hand')
    runner.train()
    return runner, work


def test_weights_equal_the_hand_computation(trained):
    runner, _ = trained
    hook = hook_of(runner, BTWHook)
    indices = list(range(8))
    # the version (training forwards so far) at each refresh: 2 and 4
    w1 = smooth({}, hand_new_weights(indices, 2, 3, 3, no_units=(5, )), 0.5)
    w2 = smooth(w1, hand_new_weights(indices, 4, 3, 3, no_units=(5, )), 0.5)
    w1[5] = w2[5] = [1.0, 1.0]  # no units: keeps its weight (1)
    assert sorted(hook.weights) == indices
    for i in indices:
        assert hook.weights[i] == pytest.approx(w2[i], rel=1e-9, abs=1e-12), i
    # the weights differ per sample and per modality (not a trivial outcome)
    assert len({round(hook.weights[i][0], 9) for i in indices}) > 4
    assert hook.weights[0] != pytest.approx(hook.weights[0][::-1])

    # the model saw, per iteration, exactly the weights stored at the time
    model = runner.model
    assert len(model.seen) == 6
    for step, (idx, weights) in enumerate(model.seen):
        if step < 2:  # epoch 1: no refresh yet, every weight is 1
            assert weights is None
            continue
        table = w1 if step < 4 else w2
        expected = torch.tensor([table[i] for i in idx], dtype=torch.float32)
        assert torch.equal(weights, expected)


def test_refresh_pass_schedule_and_mode(trained):
    runner, _ = trained
    calls = runner.model.prediction_calls
    # one pass after epoch 1 and one after epoch 2, each sample once, in order
    assert [c['version'] for c in calls] == [2, 2, 4, 4]
    assert [i for c in calls[:2] for i in c['sample_idx']] == list(range(8))
    assert all(c['training'] is False and c['grad'] is False for c in calls)
    assert all(c['source'] == 'view' and c['top_k'] == 3 for c in calls)
    assert hook_of(runner, BTWHook).refreshes == 2


@pytest.mark.parametrize('interval,epochs,versions', [(2, 5, [2, 4]), (1, 1, []),
                                                      (3, 3, [])])
def test_refresh_every_interval_epochs_but_not_after_the_last(
        tmp_path, interval, epochs, versions):
    runner = btw_runner(
        tmp_path,
        BTWHook(interval=interval),
        epochs=epochs,
        length=4,
        name=f'schedule{interval}{epochs}')
    runner.train()
    # one iteration per epoch: the version at a refresh is the epoch count
    assert sorted({c['version'] for c in runner.model.prediction_calls}) == versions


def test_logged_distribution_per_modality(trained):
    runner, _ = trained
    hook = hook_of(runner, BTWHook)
    hub = runner.message_hub
    table = np.array([hook.weights[i] for i in range(8)])
    for j, m in enumerate(NAMES):
        w = table[:, j]
        for stat, value in (('mean', w.mean()), ('std', w.std()), ('min', w.min()),
                            ('max', w.max())):
            assert hub.get_scalar(f'train/btw_w_{m}_{stat}').current() == \
                pytest.approx(value, rel=1e-9)
        mi = hand_mi(*_scores(m, 4), 3)
        assert hub.get_scalar(f'train/btw_mi_{m}').current() == pytest.approx(
            mi, rel=1e-9)


def _scores(modality, version):
    x, y = [], []
    for i in range(8):
        if i == 5:
            continue
        preds = known_predictions(i, version, 3)
        x.append(float(preds[modality].max(dim=1).values.mean()))
        y.append(float(preds['fused'].max(dim=1).values.mean()))
    return np.array(x), np.array(y)


def test_state_is_in_the_checkpoint_and_resume_gives_the_same_weights(trained):
    runner, work = trained
    hook = hook_of(runner, BTWHook)
    ckpt = load_local_checkpoint(osp.join(str(work), 'epoch_3.pth'))
    state = ckpt['btw']
    assert state['modalities'] == list(NAMES)
    assert state['sample_idx'].tolist() == list(range(8))
    assert torch.equal(
        state['weights'],
        torch.tensor([hook.weights[i] for i in range(8)], dtype=torch.float64))
    # resume after epoch 1 (the first refresh's weights in the checkpoint)
    resumed = btw_runner(
        work / 'resumed',
        BTWHook(interval=1, smoothing=0.5, top_k=3, mi_bins=3, rescale=False),
        epochs=3,
        model=BTWToyModel(no_units=(5, )),
        name='resumed',
        resume=True,
        load_from=osp.join(str(work), 'epoch_1.pth'))
    resumed.train()
    again = hook_of(resumed, BTWHook)
    assert again.refreshes == 2
    assert again.weights == hook.weights
    assert len(resumed.model.seen) == 4
    for (i_a, w_a), (i_b, w_b) in zip(resumed.model.seen, runner.model.seen[2:]):
        assert i_a == i_b and torch.equal(w_a, w_b)


def test_checkpoint_of_another_layout_is_refused(trained):
    runner, _ = trained
    hook = hook_of(runner, BTWHook)
    state = dict(
        modalities=['rgb', 'depth'],
        sample_idx=torch.tensor([0]),
        weights=torch.ones(1, 2, dtype=torch.float64),
        refreshes=1)
    with mock.patch.object(runner, '_resume', True), pytest.raises(
            ValueError, match=r"\['rgb', 'depth'\].*\['rgb', 'thermal'\]"):
        hook.after_load_checkpoint(runner, dict(btw=state))


def test_load_from_starts_a_new_run_without_the_old_weights(trained):
    """Fine-tuning from a BTW checkpoint (load_from, no resume): the old run's
    weights, keyed by its sample_idx, are not applied to this run's samples."""
    _, work = trained
    checkpoint = osp.join(str(work), 'epoch_1.pth')
    assert load_local_checkpoint(checkpoint)['btw']['refreshes'] == 1
    fine = btw_runner(
        work / 'finetune',
        BTWHook(interval=1, smoothing=0.5, top_k=3, mi_bins=3, rescale=False),
        epochs=1,
        model=BTWToyModel(no_units=(5, )),
        name='finetune',
        load_from=checkpoint)
    with mock.patch('mwam_mm.engine.btw_hook.print_log') as log:
        fine.train()
    hook = hook_of(fine, BTWHook)
    assert hook.weights == {} and hook.refreshes == 0
    assert [w for _, w in fine.model.seen] == [None, None]  # weight 1 throughout
    assert any('not restored' in str(c) for c in log.call_args_list)


# ------------------------------------------------------------ application
def _fake_runner(model):
    hub = fresh_message_hub('btw')
    return SimpleNamespace(model=model, message_hub=hub)


def test_features_scaled_by_the_stored_weight_in_training_only():
    torch.manual_seed(0)
    model = BTWToyModel()
    runner = _fake_runner(model)
    hook = BTWHook()
    hook.before_run(runner)
    hook.weights = {3: [0.25, 1.5], 7: [2.0, 0.0]}
    dataset = BTWToyDataset(length=9)
    batch = [dataset[i] for i in (7, 0, 3)]
    data_batch = dict(
        inputs=[b['inputs'] for b in batch],
        data_samples=[b['data_samples'] for b in batch])
    x = torch.stack(data_batch['inputs'])
    fused_inputs = []
    model.backbone.fusions[0].register_forward_hook(
        lambda module, args, out: fused_inputs.append([f.detach() for f in args[0]]))

    model.train()
    hook.before_train_iter(runner, 0, data_batch)
    expected = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.25, 1.5]])
    # the weights ride on the batch's samples, as their modality_weights
    samples = data_batch['data_samples']
    assert [s.modality_weights for s in samples] == [
        dict(rgb=2.0, thermal=0.0),
        dict(rgb=1.0, thermal=1.0),
        dict(rgb=0.25, thermal=1.5)
    ]
    assert torch.equal(
        weights_from_data_samples(samples, model.backbone.layout), expected)
    model(data_batch['inputs'], samples)
    streams = model.backbone.forward_streams(x)
    for m, name in enumerate(NAMES):
        own = streams[name][0].detach()
        assert torch.equal(fused_inputs[0][m], own * expected[:, m].view(-1, 1, 1, 1))
    assert not torch.equal(fused_inputs[0][0], streams['rgb'][0].detach())
    hook.after_train_iter(runner, 0, data_batch)

    # weights given to the backbone are ignored outside training mode
    model.eval()
    model.backbone(x, None, expected)
    for m, name in enumerate(NAMES):
        assert torch.equal(fused_inputs[1][m], streams[name][0].detach())


def test_no_weights_before_the_first_refresh():
    model = BTWToyModel()
    runner = _fake_runner(model)
    hook = BTWHook()
    hook.before_run(runner)
    sample = BTWToyDataset()[0]
    hook.before_train_iter(
        runner, 0,
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]))
    assert 'modality_weights' not in sample['data_samples']


# ------------------------------------------------------------ 2 gloo ranks
def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_gloo_ranks_apply_identical_weights(tmp_path):
    work = str(tmp_path)
    # 8 samples, 2 ranks x batch 2: 2 iterations per epoch; refresh after epoch 1
    mp.spawn(dist_worker, args=(2, _free_port(), work, 2, 8, 2), nprocs=2, join=True)
    ranks = [
        torch.load(osp.join(work, f'rank{r}.pth'), weights_only=True) for r in (0, 1)
    ]
    assert ranks[0]['weights'] == ranks[1]['weights']
    assert sorted(ranks[0]['weights']) == list(range(8))
    # each rank scored only its shard; the weights need the whole set
    assert [i for c in ranks[0]['calls'] for i in c['sample_idx']] == [0, 2, 4, 6]
    assert [i for c in ranks[1]['calls'] for i in c['sample_idx']] == [1, 3, 5, 7]
    expected = smooth({}, hand_new_weights(range(8), 2, 3, 3), 0.5)
    for i in range(8):
        assert ranks[0]['weights'][i] == pytest.approx(expected[i], rel=1e-9)
    # in epoch 2 each rank applied those weights to its own samples
    for rank in ranks:
        for idx, weights in rank['seen'][2:]:
            assert torch.equal(
                weights, torch.tensor([expected[i] for i in idx], dtype=torch.float32))
    for name, value in ranks[0]['params'].items():  # DDP kept the replicas equal
        assert torch.equal(value, ranks[1]['params'][name]), name


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize('kwargs,match', [
    (dict(interval=0), 'interval must be a positive whole number of epochs, got 0'),
    (dict(interval=-2), 'got -2'),
    (dict(interval=1.5), 'got 1.5'),
    (dict(smoothing=0), r'smoothing must lie in \(0, 1\].*got 0'),
    (dict(smoothing=1.5), 'got 1.5'),
    (dict(smoothing=-0.1), r'got -0\.1'),
    (dict(source='aux_heads'), "unknown source 'aux_heads'"),
    (dict(top_k=0), 'top_k must be an integer >= 1, got 0'),
    (dict(mi_bins=1), 'mi_bins must be an integer >= 2, got 1'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BTWHook(**kwargs)


def test_smoothing_of_one_keeps_no_history():
    hook = BTWHook(smoothing=1, mi_bins=2, rescale=False)
    hook.layout = SimpleNamespace(names=list(NAMES))
    kl_rgb, kl_thermal = [0.1, 0.2, 0.3], [0.6, 0.4, 0.2]
    s_rgb, s_thermal, s_fused = [0.5, 0.58, 0.7], [0.4, 0.4, 0.4], [0.7, 0.82, 0.9]
    rows = [[i, kl_rgb[i], kl_thermal[i], s_rgb[i], s_thermal[i], s_fused[i]]
            for i in range(3)]
    hook.weights = {i: [9.0, 9.0] for i in range(3)}
    hook.update(rows)
    mi = hand_mi(np.array(s_rgb), np.array(s_fused), 2)
    assert mi > 0.1
    for i, norm in enumerate([0.0, 0.5, 1.0]):
        assert hook.weights[i][0] == pytest.approx(norm * mi, rel=1e-12, abs=1e-15)
        assert hook.weights[i][1] == 0.0  # a constant score tells nothing: MI 0
    assert hook.last_mi == pytest.approx(dict(rgb=mi, thermal=0.0))


def test_rescale_keeps_the_ratios_and_makes_the_mean_one():
    rows = [[i, 0.1 * i, 0.3 - 0.05 * i, 0.2 + 0.1 * i, 0.9 - 0.1 * i, 0.5 + 0.05 * i]
            for i in range(5)]
    plain, rescaled = BTWHook(mi_bins=3, rescale=False), BTWHook(mi_bins=3)
    for hook in (plain, rescaled):
        hook.layout = SimpleNamespace(names=list(NAMES))
        hook.update(rows)
    a = np.array([plain.weights[i] for i in range(5)])
    b = np.array([rescaled.weights[i] for i in range(5)])
    assert a.mean() < 0.9
    assert b.mean() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(b, a / a.mean(), rtol=1e-12)


def test_missing_sample_idx_says_to_add_it_to_meta_keys(tmp_path):
    runner = btw_runner(
        tmp_path, BTWHook(), epochs=1, length=4, with_sample_idx=False, name='noidx')
    with pytest.raises(KeyError, match=r"no 'sample_idx'.*PackDetInputs.*meta_keys"):
        runner.train()


def test_duplicate_sample_idx_is_refused():
    hook = BTWHook()
    hook.layout = SimpleNamespace(names=list(NAMES))
    rows = [[4, 0.1, 0.2, 0.5, 0.5, 0.5], [4, 0.3, 0.2, 0.5, 0.5, 0.5]]
    with pytest.raises(ValueError, match='sample_idx 4 occurs more than once'):
        hook.update(rows)


def test_iteration_based_loop_needs_by_epoch_false(tmp_path):
    runner = btw_runner(
        tmp_path,
        BTWHook(interval=2),
        length=4,
        name='iters',
        train_cfg=dict(by_epoch=False, max_iters=2))
    with pytest.raises(ValueError, match='by_epoch=False with interval in iterations'):
        runner.train()


def test_iteration_based_refresh(tmp_path):
    runner = btw_runner(
        tmp_path,
        BTWHook(interval=2, by_epoch=False),
        length=4,
        name='iters2',
        train_cfg=dict(by_epoch=False, max_iters=5))
    runner.train()
    # after iterations 2 and 4 (not 5, the last)
    assert sorted({c['version'] for c in runner.model.prediction_calls}) == [2, 4]


class PlainModel(BaseModel):
    """A dual-stream model without per-modality predictions."""

    def __init__(self):
        super().__init__()
        self.backbone = BTWToyModel().backbone

    def forward(self, inputs, data_samples=None, mode='loss'):
        return {}


class NoWeightsBackbone(nn.Module):
    """Two branches, and no streams to apply BTW's weights to."""

    def __init__(self):
        super().__init__()
        self.rgb, self.thermal = nn.Conv2d(3, 4, 1), nn.Conv2d(1, 4, 1)

    def modality_branches(self):
        return dict(rgb=self.rgb, thermal=self.thermal)


def test_models_btw_cannot_weight_are_refused():
    with pytest.raises(TypeError, match='PlainModel has none'):
        BTWHook().before_run(_fake_runner(PlainModel()))
    model = BTWToyModel()
    model.backbone = NoWeightsBackbone()
    with pytest.raises(TypeError, match='backbone NoWeightsBackbone has none'):
        BTWHook().before_run(_fake_runner(model))
