"""The segmentation family's smoke run of benchmarks/robustness_leaderboard.py
(tiny synthetic data in the MFNet layout, two iterations a run), with the
references' training curves; the curves of resumed runs; and the curves'
statistics and report on known inputs."""
import itertools
import json
import os
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.logging import MessageHub

from mwam_mm.datasets import make_synthetic_rgbt
from tests.helpers.scripts import load_script


def leaderboard():
    return load_script('benchmarks/robustness_leaderboard.py', '_leaderboard')


def test_segmentation_family_smoke_with_reference_curves(tmp_path, capsys):
    benchmark = leaderboard()
    lb = benchmark.lb
    work = str(tmp_path / 'work')
    benchmark.main([
        '--config', lb.SYNTHETIC_SEG_CONFIG, '--work-dir', work, '--data-root',
        str(tmp_path / 'data'), '--max-iters', '2', '--num-train', '4', '--num-test',
        '4', '--width', '64', '--height', '64', '--batch-size', '2', '--variants',
        'baseline', 'unimodal-thermal', '--seeds', '0', '1', '--curve-interval', '1',
        '--scenarios', 'blank', 'missing', 'blank-detected'
    ])
    capsys.readouterr()
    assert osp.isfile(osp.join(str(tmp_path / 'data'), 'images', '190001D.png')) or \
        osp.isfile(osp.join(str(tmp_path / 'data'), 'images', '190001N.png'))
    board = json.load(open(osp.join(work, 'leaderboard.json')))
    assert board['metric'] == 'mIoU'
    assert board['data']['task'] == 'segmentation'
    assert board['scenarios'] == ['blank', 'missing', 'blank-detected']
    assert board['subsets'] == ['rgb+thermal', 'rgb', 'thermal']
    base = board['variants']['baseline']['scenarios']
    for scenario in board['scenarios']:
        scores = base[scenario]['scores']
        assert set(scores) == set(board['subsets'])
        assert all(0 <= scores[s]['mean'] <= 100 for s in scores)
    # the names' D / N give the day / night split (3 of these 4 scenes are night)
    assert set(board['splits']) == {'day', 'night'}
    night = board['splits']['night']['variants']['baseline']['scenarios']['missing']
    assert night['scores']['rgb']['n'] == 2
    assert board['controls'] == ['baseline']
    # the reference recorded its curve (validated after iterations 1 and 2);
    # the fused variant did not
    results = {
        v: json.load(open(osp.join(work, 'runs', v, 'seed0', 'result.json')))
        for v in ('baseline', 'unimodal-thermal')
    }
    assert results['baseline']['curve'] is None
    curve = results['unimodal-thermal']['curve']
    assert curve['metric'] == 'mIoU' and curve['unit'] == 'iter'
    assert curve['points'] == [1, 2] and len(curve['scores']) == 2
    entry = board['curves']['unimodal-thermal']
    assert entry['points'] == [1, 2] and entry['seeds'] == [0, 1]
    assert entry['from_point'] == 1
    gain, tolerance = entry['last_third'], entry['tolerance']
    assert entry['converged'] == (True if gain['high'] <= tolerance else
                                  False if gain['low'] > 0 else None)
    text = open(osp.join(work, 'leaderboard.md')).read()
    assert '## Training curves of the references' in text
    assert '(mIoU)' in text


def _result(seed, scores, points=(3, 6, 9, 12)):
    return dict(
        seed=seed,
        curve=dict(metric='m', unit='epoch', points=list(points), scores=scores))


def test_curve_board_convergence_on_known_inputs():
    lb = leaderboard().lb
    # still improving: every seed gains 0.1 +- 0.01 over the last third
    rising = [
        _result(0, [0.1, 0.2, 0.3, 0.40]),
        _result(1, [0.1, 0.2, 0.3, 0.41]),
        _result(2, [0.1, 0.2, 0.3, 0.39])
    ]
    # late: flat over the last point, still gaining over the last third
    late = [
        _result(0, [0.1, 0.5, 0.6, 0.61]),
        _result(1, [0.1, 0.5, 0.6, 0.59]),
        _result(2, [0.1, 0.5, 0.6, 0.60])
    ]
    board = lb.curve_board({'rising': rising, 'late': late, 'none': [dict(seed=0)]})
    assert set(board) == {'rising', 'late'}
    assert board['rising']['from_point'] == 6  # the last point <= 2/3 of 12
    # the gain is from epoch 6 (0.2) to epoch 12: 0.2 on average
    assert board['rising']['last_third']['diff'] == pytest.approx(0.2)
    assert board['rising']['converged'] is False
    assert board['late']['last_third']['diff'] == pytest.approx(0.6 - 0.5)
    assert board['late']['converged'] is False  # 0.5 -> 0.6: it still gained
    flat_end = [
        _result(s, [0.1, 0.6, 0.6 + d, 0.6 - d])
        for s, d in enumerate((0.01, -0.02, 0.0))
    ]
    board = lb.curve_board({'flat': flat_end})
    gain = board['flat']['last_third']
    assert gain['low'] < 0 < gain['high'] and board['flat']['converged'] is True
    # its rise 0.1 -> 0.603: the last third may add at most a tenth of it
    assert board['flat']['tolerance'] == pytest.approx(0.1 * (0.6 + 0.01 / 3 - 0.1))
    assert gain['high'] < board['flat']['tolerance']
    # seeds that disagree (one gains 0.3, one loses 0.05): the interval holds 0,
    # but it is too wide to show a flat curve
    disagree = [
        _result(s, [0.1, 0.5, 0.55, 0.5 + g]) for s, g in enumerate((0.3, -0.05, 0.1))
    ]
    wide = lb.curve_board({'wide': disagree})['wide']
    gain = wide['last_third']
    assert gain['low'] < 0 < wide['tolerance'] < gain['high']
    assert wide['converged'] is None
    assert 'is undetermined (the seeds disagree)' in '\n'.join(
        lb.curve_lines({'wide': wide}))
    assert [s['mean'] for s in board['flat']['scores']][:2] == pytest.approx([0.1, 0.6])
    # a seed resumed where it had validated lacks that point (here the first
    # one): every seed is kept, on the points they all have
    gap = [
        dict(
            seed=2,
            curve=dict(rising[2]['curve'], points=[3, 9, 12], scores=[0.1, 0.3, 0.39]))
    ] + rising[:2]
    gapped = lb.curve_board({'gap': gap})['gap']
    assert gapped['points'] == [3, 9, 12] and gapped['seeds'] == [2, 0, 1]
    assert gapped['from_point'] == 3  # the last point <= 8
    assert gapped['last_third']['diff'] == pytest.approx(0.3)
    assert [s['mean'] for s in gapped['scores']] == pytest.approx([0.1, 0.3, 0.4])
    one = lb.curve_board({'one': [_result(0, [0.1, 0.2, 0.3, 0.4])]})
    assert one['one']['converged'] is None and one['one']['last_third'] is None
    lines = '\n'.join(lb.curve_lines(board))
    assert '`flat` has converged' in lines and 'epoch 6 to epoch 12' in lines
    assert 'convergence undetermined' in '\n'.join(lb.curve_lines(one))


def test_a_miss_rate_curve_converges_as_it_stops_falling():
    lb = leaderboard().lb

    def rate(seed, scores):
        result = _result(seed, scores)
        result['curve']['metric'] = 'kaist/MR_all'
        return result

    # still falling by 0.1 over the last third: improving, not converged
    falling = [
        rate(s, [0.9, 0.6, 0.5, 0.4 + d]) for s, d in enumerate((0.0, 0.01, -0.01))
    ]
    entry = lb.curve_board({'falling': falling})['falling']
    assert entry['last_third']['diff'] == pytest.approx(0.2)  # its fall 0.6 -> 0.4
    assert entry['tolerance'] == pytest.approx(0.1 * 0.5)
    assert entry['converged'] is False
    # flat after its fall: converged (read as a rise, 'flat' would be too)
    flat = [
        rate(s, [0.9, 0.4, 0.4 + d, 0.4 - d]) for s, d in enumerate((0.01, -0.02, 0.0))
    ]
    assert lb.curve_board({'flat': flat})['flat']['converged'] is True
    # rising again: a miss rate that grows is no improvement, whatever its size
    worse = [
        rate(s, [0.9, 0.4, 0.5, 0.6 + d]) for s, d in enumerate((0.0, 0.01, -0.01))
    ]
    entry = lb.curve_board({'worse': worse})['worse']
    assert entry['last_third']['diff'] == pytest.approx(-0.2)
    assert entry['converged'] is True


def test_a_score_above_its_ceiling_is_called_so():
    lb = leaderboard().lb
    assert lb.format_fraction(2.36) == 'above'
    assert lb.format_fraction(1.0) == '100' and lb.format_fraction(0.873) == '87'


_HUBS = itertools.count()


def _runner(train_cfg, scores, steps=None):
    """A trained runner as :func:`training_curve` reads it: its config and its
    message hub's validation history (a hub of its own)."""
    hub = MessageHub.get_instance(f'test-training-curve-{next(_HUBS)}')
    for i, score in enumerate(scores):
        hub.update_scalar('val/mIoU', score)
        hub.update_scalar('val/aAcc', 90.0)
        if steps is not None:
            hub.update_scalar(lb_module().CURVE_STEP_KEY, steps[i])
    return SimpleNamespace(message_hub=hub, cfg=Config(dict(train_cfg=train_cfg)))


def lb_module():
    return leaderboard().lb


def test_training_curve_takes_the_steps_kept_with_the_scores():
    lb = lb_module()
    epochs = dict(max_epochs=12, val_interval=3)
    # resumed from epoch 6's checkpoint (saved before epoch 6's validation)
    runner = _runner(epochs, [10.0, 30.0, 40.0], steps=[3, 9, 12])
    assert lb.training_curve(runner) == dict(
        metric='mIoU', unit='epoch', points=[3, 9, 12], scores=[10.0, 30.0, 40.0])
    assert lb.training_curve(runner, 'aAcc')['scores'] == [90.0] * 3
    assert lb.training_curve(runner, 'mAcc') is None
    # no steps kept (a run of older code): the points only where every one of
    # them has its score, never guessed
    full = _runner(epochs, [10.0, 20.0, 30.0, 40.0])
    assert lb.training_curve(full)['points'] == [3, 6, 9, 12]
    assert lb.training_curve(_runner(epochs, [10.0, 30.0, 40.0])) is None
    iters = _runner(
        dict(type='IterBasedTrainLoop', max_iters=5, val_interval=2), [1.0, 2.0, 3.0])
    assert lb.training_curve(iters)['points'] == [2, 4, 5]
    assert lb.training_curve(iters)['unit'] == 'iter'


def test_bad_curve_options_are_refused_by_name(tmp_path):
    benchmark = leaderboard()
    mfnet = 'configs/segmentation/deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py'
    # a real family without its data: nothing is generated, and nothing could
    # train (were the options not refused, the runs would fail, not the checks)
    common = [
        '--config', mfnet, '--data-root',
        str(tmp_path / 'none'), '--work-dir',
        str(tmp_path / 'work'), '--seeds', '0', '--variants', 'baseline', 'unimodal-rgb'
    ]
    with pytest.raises(
            SystemExit, match=r'--reference-epochs 3 .*--max-iters 2 '
            '.*give one of them'):
        benchmark.main(common + ['--reference-epochs', '3', '--max-iters', '2'])
    # a family trained by iterations has no epochs for its references
    with pytest.raises(
            SystemExit,
            match=r'unimodal-rgb seed 0: reference_epochs=3: '
            r'.*_mfnet\.py trains by iterations'):
        benchmark.main(common + ['--reference-epochs', '3'])
    with pytest.raises(
            SystemExit,
            match=r'unimodal-rgb seed 0: curve_interval=5 is '
            r'longer than the training of unimodal-rgb \(2 iters\)'):
        benchmark.main(common + ['--max-iters', '2', '--curve-interval', '5'])
    assert not osp.exists(str(tmp_path / 'work' / 'runs'))  # nothing trained


def test_a_resumed_reference_keeps_its_curve(tmp_path):
    """A reference resumed from a checkpoint saved where it then validated (at
    iteration 2 of 3), and one resumed from its final checkpoint (tested again):
    each score keeps its iteration, and the final weights have theirs."""
    lb = lb_module()
    data = str(tmp_path / 'data')
    make_synthetic_rgbt(
        data, num_train=4, num_test=2, width=64, height=64, task='segmentation')
    run = str(tmp_path / 'run')
    opts = dict(
        max_iters=3,
        curve_interval=1,
        batch_size=2,
        test_scale=(64, 64),
        cfg_options=dict(
            lb.data_root_options(data), **{'default_hooks.checkpoint.interval': 1}),
        scenarios=['missing'],
        splits=None,
        quiet=True)
    first = lb.run_variant(lb.SYNTHETIC_SEG_CONFIG, run, 0, opts, 'unimodal-thermal')
    curve = first['curve']
    assert curve['points'] == [1, 2, 3] and curve['unit'] == 'iter'
    # interrupted after iteration 2 (its checkpoint saved, not yet validated)
    os.remove(osp.join(run, 'iter_3.pth'))
    with open(osp.join(run, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run, 'iter_2.pth'))
    resumed = lb.run_variant(lb.SYNTHETIC_SEG_CONFIG, run, 0, opts, 'unimodal-thermal')
    assert resumed['curve']['points'] == [1, 3]
    assert resumed['curve']['scores'][0] == pytest.approx(curve['scores'][0])
    # the finished training tested again with other settings: nothing trained
    again = lb.run_variant(lb.SYNTHETIC_SEG_CONFIG, run, 0,
                           dict(opts, scenarios=['blank']), 'unimodal-thermal')
    assert again['curve']['points'] == [1, 3]
    assert again['curve']['scores'] == pytest.approx(resumed['curve']['scores'])
