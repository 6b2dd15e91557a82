"""The `cmpt-frozen` variant: its streams start from the same seed's unimodal
references and stay frozen; it runs after them, and without them it is refused;
its stored run is reused from a moved work dir, and refused once a reference it
started from has other weights."""
import json
import os.path as osp
import shutil

import pytest
import torch

from mwam_mm.compat.checkpoint import load_local_checkpoint
from tests.helpers.scripts import load_script


def leaderboard():
    return load_script('benchmarks/robustness_leaderboard.py', '_leaderboard')


def _streams(path, modality):
    state = load_local_checkpoint(path)['state_dict']
    prefix = f'backbone.streams.{modality}.'
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_cmpt_frozen_starts_from_the_references_and_keeps_their_streams(
        tmp_path, capsys):
    benchmark = leaderboard()
    work = str(tmp_path / 'work')
    args = [
        '--data-root',
        str(tmp_path / 'data'), '--max-iters', '2', '--num-train', '4', '--num-test',
        '2', '--width', '64', '--height', '64', '--batch-size', '2', '--variants',
        'cmpt-frozen', 'unimodal-rgb', 'unimodal-thermal', '--seeds', '0',
        '--scenarios', 'missing', '--splits', 'none'
    ]
    benchmark.main(['--work-dir', work] + args)
    capsys.readouterr()
    runs = osp.join(work, 'runs')
    result = json.load(open(osp.join(runs, 'cmpt-frozen', 'seed0', 'result.json')))
    assert set(result['scenarios']['missing']) == {'rgb+thermal', 'rgb', 'thermal'}
    fused = osp.join(runs, 'cmpt-frozen', 'seed0', 'iter_2.pth')
    for modality in ('rgb', 'thermal'):
        reference = osp.join(runs, f'unimodal-{modality}', 'seed0', 'iter_2.pth')
        ours, theirs = _streams(fused, modality), _streams(reference, modality)
        assert ours and set(ours) == set(theirs)
        # the reference's weights and norm statistics, unchanged by training
        for key, value in theirs.items():
            assert torch.equal(ours[key], value), key
    state = load_local_checkpoint(fused)['state_dict']
    assert any(k.startswith('backbone.adapters.rgb.') for k in state)
    assert any(k.startswith('backbone.missing_substitute.') for k in state)
    # the work dir moved: every run is reused (the checkpoints' paths are labels)
    moved = str(tmp_path / 'moved')
    shutil.move(work, moved)
    benchmark.main(['--work-dir', moved] + args)
    assert '3 runs (3 variants x 1 seeds), 3 finished before' in capsys.readouterr().out
    # a reference with other stream weights (trained again, say): what started
    # from its old ones is refused, named
    reference = osp.join(moved, 'runs', 'unimodal-rgb', 'seed0', 'iter_2.pth')
    checkpoint = load_local_checkpoint(reference)
    weights = checkpoint['state_dict']
    key = next(k for k in weights if k.startswith('backbone.streams.rgb.'))
    weights[key] = weights[key] + 1
    torch.save(checkpoint, reference)
    with pytest.raises(
            SystemExit,
            match=r'cmpt-frozen seed 0: .*another setup '
            r'\(.*streams: .*--force'):
        benchmark.main(['--work-dir', moved] + args)


def test_cmpt_frozen_without_its_references_is_refused(tmp_path):
    benchmark = leaderboard()
    with pytest.raises(
            SystemExit,
            match=r"cmpt-frozen starts its streams from the "
            r"runs of \['unimodal-thermal'\]"):
        benchmark.main([
            '--work-dir',
            str(tmp_path / 'work'), '--data-root',
            str(tmp_path / 'data'), '--max-iters', '1', '--num-train', '2',
            '--num-test', '2', '--width', '64', '--height', '64', '--variants',
            'cmpt-frozen', 'unimodal-rgb', '--seeds', '0'
        ])


def test_a_missing_reference_checkpoint_is_named(tmp_path):
    lb = leaderboard().lb
    missing = str(tmp_path / 'nowhere' / 'epoch_12.pth')
    with pytest.raises(FileNotFoundError, match='the rgb stream starts from .*nowhere'):
        lb.run_variant(
            lb.SYNTHETIC_CONFIG,
            str(tmp_path / 'run'),
            0,
            dict(max_iters=1),
            'cmpt-frozen',
            stream_checkpoints={'rgb': missing})
