"""The segmentation family's smoke run of benchmarks/robustness_leaderboard.py
(tiny synthetic data in the MFNet layout, two iterations a run), with the
references' training curves; and the curves' statistics and report on known
inputs."""
import json
import os.path as osp

import pytest

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
    assert entry['from_point'] == 1 and entry['converged'] in (True, False)
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
    assert [s['mean'] for s in board['flat']['scores']][:2] == pytest.approx([0.1, 0.6])
    one = lb.curve_board({'one': [_result(0, [0.1, 0.2, 0.3, 0.4])]})
    assert one['one']['converged'] is None and one['one']['last_third'] is None
    lines = '\n'.join(lb.curve_lines(board))
    assert '`flat` has converged' in lines and 'epoch 6 to epoch 12' in lines
    assert 'convergence undetermined' in '\n'.join(lb.curve_lines(one))


def test_a_score_above_its_ceiling_is_called_so():
    lb = leaderboard().lb
    assert lb.format_fraction(2.36) == 'above'
    assert lb.format_fraction(1.0) == '100' and lb.format_fraction(0.873) == '87'
