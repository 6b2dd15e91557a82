"""Every count option of tools/ and benchmarks/ is refused below its minimum by
argparse, with a message naming the option and the minimum."""
import argparse
import functools
import os.path as osp
import sys

import pytest

from tests.helpers.scripts import load_script

# script, the arguments it needs besides the option, and its count options with
# their minimum (or (minimum, maximum))
SCRIPTS = {
    'tools/make_synthetic_rgbt.py': (['out'], {
        '--seed': 0,
        '--num-train': 1,
        '--num-test': 1,
        '--width': 32,
        '--height': 32,
    }),
    'tools/browse_dataset.py': (['cfg.py', '--out-dir', 'out'], {
        '--max-samples': 1
    }),
    'tools/robustness.py': (['cfg.py', 'ckpt.pth'], {
        '--severities': (1, 5),
        '--degradation-seed': 0,
    }),
    'tools/train.py': (['cfg.py'], {
        '--local_rank': 0
    }),
    'tools/test.py': (['cfg.py', 'ckpt.pth'], {
        '--local_rank': 0
    }),
    'tools/demo.py': ([], {
        '--seeds': 0,
        '--epochs': 1,
        '--max-iters': 1,
        '--batch-size': 1,
        '--width': 32,
        '--height': 32,
        '--num-train': 1,
        '--num-test': 1,
        '--data-seed': 0,
        '--jobs': 1,
    }),
    'benchmarks/robustness_leaderboard.py': ([], {
        '--seeds': 0,
        '--epochs': 1,
        '--max-iters': 1,
        '--batch-size': 1,
        '--data-seed': 0,
        '--width': 32,
        '--height': 32,
        '--num-train': 1,
        '--num-test': 1,
        '--severities': (1, 5),
        '--jobs': 1,
    }),
    'benchmarks/mwam_ablation.py': ([], {
        '--seeds': 0,
        '--epochs': 1,
        '--max-iters': 1,
        '--batch-size': 1,
        '--width': 32,
        '--height': 32,
        '--num-train': 1,
        '--num-test': 1,
        '--jobs': 1,
    }),
    'benchmarks/mwam_overhead.py': ([], {
        '--iters': 1,
        '--warmup': 0,
        '--repeats': 3,
        '--batch-size': 1,
    }),
    'benchmarks/frm_speed.py': ([], {
        '--repeats': 1
    }),
    'benchmarks/frm_grid_offset.py': ([], {
        '--num-synthetic': 1
    }),
    'tools/deploy/export_onnx.py': (['cfg.py', 'ckpt.pth', '--out', 'm.onnx'], {
        '--opset': 16
    }),
    'benchmarks/deploy_speed.py': ([], {
        '--repeats': 1,
        '--warmup': 0,
        '--threads': 1
    }),
}

CASES = [(script, option, bound) for script, (_, options) in SCRIPTS.items()
         for option, bound in options.items()]


@functools.lru_cache(maxsize=None)
def load(script):
    return load_script(script, '_opts')


def parse(script, argv, monkeypatch):
    """The script's arguments parsed from ``argv`` (also through sys.argv, for
    the scripts whose parser reads it)."""
    monkeypatch.setattr(sys, 'argv', [osp.basename(script)] + argv)
    # tools/train.py and tools/test.py export LOCAL_RANK when it is unset
    monkeypatch.setenv('LOCAL_RANK', '0')
    parse_args = load(script).parse_args
    try:
        return parse_args(argv)
    except TypeError:  # tools/train.py, tools/test.py: parse_args() reads sys.argv
        return parse_args()


@pytest.mark.parametrize('script,option,bound', CASES)
def test_count_option_below_its_minimum_is_refused(script, option, bound, monkeypatch,
                                                   capsys):
    minimum, maximum = bound if isinstance(bound, tuple) else (bound, None)
    required = SCRIPTS[script][0]
    with pytest.raises(SystemExit) as exit_info:
        parse(script, required + [option, str(minimum - 1)], monkeypatch)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    expected = (f'from {minimum} to {maximum}'
                if maximum is not None else f'at least {minimum}')
    assert f'argument {option}' in err and expected in err, err
    assert f'got {minimum - 1}' in err, err

    if maximum is not None:
        with pytest.raises(SystemExit):
            parse(script, required + [option, str(maximum + 1)], monkeypatch)
        assert f'argument {option}' in capsys.readouterr().err

    # the minimum itself is allowed
    args = parse(script, required + [option, str(minimum)], monkeypatch)
    value = getattr(args, option.lstrip('-').replace('-', '_'))
    assert value in (minimum, [minimum])


def test_make_synthetic_negative_count_exits_before_writing(tmp_path, monkeypatch,
                                                            capsys):
    out = tmp_path / 'data'
    monkeypatch.setattr(sys, 'argv',
                        ['make_synthetic_rgbt.py',
                         str(out), '--num-train', '-5'])
    with pytest.raises(SystemExit):
        load('tools/make_synthetic_rgbt.py').main()
    assert 'argument --num-train: must be at least 1, got -5' in capsys.readouterr().err
    assert not out.exists()


def test_int_at_least_messages():
    from mwam_mm.engine.runner_utils import int_at_least, positive_int
    assert positive_int('3') == 3
    with pytest.raises(argparse.ArgumentTypeError, match='must be at least 1, got 0'):
        positive_int('0')
    with pytest.raises(argparse.ArgumentTypeError, match="must be an integer, got 'x'"):
        positive_int('x')
    with pytest.raises(argparse.ArgumentTypeError, match='must be from 1 to 5, got 6'):
        int_at_least(1, 5)('6')
