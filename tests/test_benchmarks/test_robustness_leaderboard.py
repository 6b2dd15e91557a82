"""A smoke run of benchmarks/robustness_leaderboard.py: tiny synthetic data, two
iterations per run, two variants and the RGB ceiling, two seeds; then the same
command again (nothing retrained), tools/robustness.py's degradations on one of
its models, other test settings (tested again, not retrained) and another
schedule (refused)."""
import json
import math
import os
import os.path as osp
import re
import statistics

import pytest

from tests.helpers.scripts import load_script


def load_module(folder, name):
    return load_script(f'{folder}/{name}', '_leaderboard')


def test_smoke_leaderboard_structure_statistics_and_resume(tmp_path, capsys):
    benchmark = load_module('benchmarks', 'robustness_leaderboard.py')
    work = str(tmp_path / 'work')
    argv = [
        '--work-dir', work, '--data-root',
        str(tmp_path / 'data'), '--max-iters', '2', '--num-train', '4', '--num-test',
        '4', '--width', '64', '--height', '64', '--batch-size', '2', '--variants',
        'baseline', 'moddrop', 'unimodal-rgb', '--seeds', '0', '1'
    ]
    benchmark.main(argv)
    out = capsys.readouterr().out

    # one progress line per run, with the time left for the whole benchmark
    lines = re.findall(r'\[leaderboard\] run (\d)/6 (\S+) seed (\d): \d+ s; (.*)', out)
    # runs go two at a time (the default on a CPU), so they end in any order
    assert [int(i) for i, *_ in lines] == [1, 2, 3, 4, 5, 6]
    assert sorted((v, int(s)) for _, v, s, _ in lines) == [
        (v, s) for v in ('baseline', 'moddrop', 'unimodal-rgb') for s in (0, 1)
    ]
    assert all(re.fullmatch(r'about \d+ (s|min) left', t) for *_, t in lines[:-1])
    assert lines[-1][3] == 'nothing left'

    board = json.load(open(osp.join(work, 'leaderboard.json')))
    assert board['metric'] == 'pascal_voc/mAP' and board['seeds'] == [0, 1]
    assert board['scenarios'] == ['blank', 'missing', 'blank-detected']
    assert board['subsets'] == ['rgb+thermal', 'rgb', 'thermal']
    assert list(board['variants']) == ['baseline', 'moddrop', 'unimodal-rgb']
    assert board['variant_names'] == ['baseline', 'moddrop', 'unimodal-rgb']
    assert board['data']['width'] == 64 and board['data']['num_test'] == 4
    results = {
        v: [
            json.load(open(osp.join(work, 'runs', v, f'seed{s}', 'result.json')))
            for s in (0, 1)
        ]
        for v in board['variants']
    }
    for variant in ('baseline', 'moddrop'):
        for scenario in board['scenarios']:
            entry = board['variants'][variant]['scenarios'][scenario]
            assert set(entry) >= {
                'scores', 'mean', 'collapse_rate', 'fraction_of_ceiling'
            }
            # the statistics, recomputed from the runs' own results
            for subset in board['subsets']:
                values = [r['scenarios'][scenario][subset] for r in results[variant]]
                stats = entry['scores'][subset]
                assert stats['values'] == values and stats['n'] == 2
                assert stats['mean'] == pytest.approx(statistics.fmean(values))
                assert stats['std'] == pytest.approx(statistics.stdev(values))
                assert stats['se'] == pytest.approx(
                    statistics.stdev(values) / math.sqrt(2))
            means = [
                statistics.fmean(r['scenarios'][scenario].values())
                for r in results[variant]
            ]
            assert entry['mean']['mean'] == pytest.approx(statistics.fmean(means))
            assert set(entry['fraction_of_ceiling']) == {'rgb', 'thermal'}
            if variant == 'moddrop':
                marks = entry['vs_baseline']
                assert set(marks) == set(board['subsets']) | {'mean', 'collapse_rate'}
                for subset in board['subsets']:
                    own, base = entry['scores'][subset], board['variants']['baseline'][
                        'scenarios'][scenario]['scores'][subset]
                    threshold = 2 * math.sqrt(own['se']**2 + base['se']**2)
                    assert marks[subset]['threshold'] == pytest.approx(threshold)
                    assert marks[subset]['marked'] == (
                        abs(own['mean'] - base['mean']) > threshold)
    # every run: the family's base with its variant's overlays
    base = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
    for variant, runs in results.items():
        assert {(r['config'], r['setup']['variant']) for r in runs} == {(base, variant)}
    # the ceiling: tested on RGB only, once, the same score in both scenarios
    for r in results['unimodal-rgb']:
        assert r['ceiling'] == 'rgb' and r['used_modalities'] == ['rgb']
        assert r['scenarios']['blank'] == r['scenarios']['missing']
        assert list(r['scenarios']['blank']) == ['rgb']
    ceiling = board['variants']['unimodal-rgb']['scenarios']['blank']
    assert list(ceiling['scores']) == ['rgb'] and 'mean' not in ceiling
    assert board['ceilings']['rgb']['blank']['values'] == [
        r['scenarios']['blank']['rgb'] for r in results['unimodal-rgb']
    ]
    # day and night (the synthetic data lists its night scenes)
    assert list(board['splits']) == ['day', 'night']
    night = board['splits']['night']['variants']['baseline']['scenarios']['missing']
    assert night['scores']['rgb']['values'] == [
        r['splits']['night']['missing']['rgb'] for r in results['baseline']
    ]
    text = open(osp.join(work, 'leaderboard.md')).read()
    for heading in ('## Scenario `blank`', '## Scenario `missing`',
                    '## Scenario `blank-detected`', '## Per split of the test samples'):
        assert heading in text
    assert '| unimodal-rgb (ceiling) |' in text
    assert re.search(r'\| moddrop \| \d\.\d{3} ± \d\.\d{3}', text)
    assert osp.getsize(osp.join(work, 'leaderboard.png')) > 1000

    # the same command: every run found finished, nothing trained or tested
    stamps = {p: os.stat(p).st_mtime_ns for p in _results(work)}
    benchmark.main(argv)
    out = capsys.readouterr().out
    assert '6 runs (3 variants x 2 seeds), 6 finished before' in out
    assert out.count('finished before, skipped') == 6
    assert {p: os.stat(p).st_mtime_ns for p in _results(work)} == stamps
    assert json.load(open(osp.join(work, 'leaderboard.json')))['variants'] == \
        board['variants']

    # tools/robustness.py on a trained run: degradations alone, per split
    tool = load_module('tools', 'robustness.py')
    run_dir = osp.join(work, 'runs', 'baseline', 'seed0')
    config = osp.join(run_dir, 'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py')
    _, summaries, report = tool.robustness(
        config,
        osp.join(run_dir, 'iter_2.pth'),
        str(tmp_path / 'robust'),
        name='tiny',
        cfg_options=dict(log_level='WARNING'),
        scenarios=[],
        degradations=['shift', 'low-light'],
        severities=[1, 4])
    assert summaries == {} and 'chart' not in report
    data = json.load(open(report['json']))
    degradations = data['degradations']['tiny']
    assert degradations['clean'] == results['baseline'][0]['scenarios']['blank'][
        'rgb+thermal']
    assert degradations['scores']['shift'].keys() == {'rgb', 'thermal'}
    assert list(degradations['scores']['low-light']) == ['rgb']  # RGB only
    assert list(degradations['scores']['shift']['thermal']) == ['1', '4']
    assert set(degradations['splits']) == {'day', 'night'}
    assert set(degradations['summary']['modalities']) == {'rgb', 'thermal'}
    table = open(report['markdown']).read()
    assert re.search(r'\| thermal \| shift \| night \| \d\.\d{3} \| \d\.\d{3} \|',
                     table)
    assert osp.getsize(report['degradation_chart']) > 1000
    # ... and on the ceiling: its own modality only, degraded alone
    run_dir = osp.join(work, 'runs', 'unimodal-rgb', 'seed0')
    own = results['unimodal-rgb'][0]['scenarios']
    _, summaries, report = tool.robustness(
        osp.join(run_dir, 'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic_'
                 'unimodal-rgb.py'),
        osp.join(run_dir, 'iter_2.pth'),
        str(tmp_path / 'robust_ceiling'),
        cfg_options=dict(log_level='WARNING'),
        scenarios=list(own),
        degradations=['shift'],
        severities=[2])
    assert {s: x['scores'] for s, x in summaries.items()} == own
    data = json.load(open(report['json']))
    assert list(data['degradations'].popitem()[1]['scores']['shift']) == ['rgb']
    capsys.readouterr()

    # other test settings: the trained model is only tested again
    ckpt = osp.join(work, 'runs', 'unimodal-rgb', 'seed0', 'iter_2.pth')
    ckpt_stamp = os.stat(ckpt).st_mtime_ns
    benchmark.main(
        argv[:argv.index('--variants')] +
        ['--variants', 'unimodal-rgb', '--seeds', '0', '--scenarios', 'missing'])
    out = capsys.readouterr().out
    assert "no 'baseline' among the variants" in out
    assert re.search(r'run 1/1 unimodal-rgb seed 0: \d+ s; nothing left', out)
    again = json.load(
        open(osp.join(work, 'runs', 'unimodal-rgb', 'seed0', 'result.json')))
    assert list(again['scenarios']) == ['missing']
    assert again['scenarios']['missing'] == results['unimodal-rgb'][0]['scenarios'][
        'missing']
    assert os.stat(ckpt).st_mtime_ns == ckpt_stamp  # not trained again

    # another schedule in the same work dir: refused, naming the difference
    with pytest.raises(SystemExit, match='another setup.*config_hash.*--force'):
        benchmark.main([a if a != '2' else '3' for a in argv])


def _results(work):
    return sorted(
        osp.join(root, f) for root, _, files in os.walk(work) for f in files
        if f == 'result.json')
