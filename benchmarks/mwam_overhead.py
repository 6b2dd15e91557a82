"""MWAM's training overhead on a small dual-stream detector, side by side.

Two identical copies of the demo's slim dual-stream RetinaNet, one with MWAMHook
installed (FRM, bank, weights, their application and the per-branch gradient norms
it logs), take alternating training steps (which one goes first alternates too) on
the same real batches of the synthetic dataset. One repeat gives the median
iteration time of each and their ratio; the measurement is repeated (fresh models
each time) and one JSON line per apply mode reports every repeat's ratio and their
median, the figure to quote.

    python benchmarks/mwam_overhead.py [--iters 60] [--warmup 3] [--repeats 3]
        [--batch-size 8] [--modes grad update] [--device cpu|cuda]
"""
import argparse
import copy
import itertools
import json
import os.path as osp
import statistics
import tempfile
import time
from types import SimpleNamespace

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner

import mwam_mm  # noqa: F401
from mwam_mm.datasets import make_synthetic_rgbt
from mwam_mm.engine import MWAMHook
from mwam_mm.engine.runner_utils import int_at_least, non_negative_int, positive_int

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(
    ROOT, 'configs/detection/'
    'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py')

# MessageHubs live as long as the process; ids of freed models come back.
_hub_numbers = itertools.count()


def batches(cfg, data_root, batch_size, count):
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    loader_cfg.dataset.data_root = data_root
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    out = []
    while len(out) < count:
        out.extend(loader)
    return out[:count]


def sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=positive_int, default=60)
    parser.add_argument('--warmup', type=non_negative_int, default=3)
    parser.add_argument(
        '--repeats',
        # the figure is the median of the repeats
        type=int_at_least(3),
        default=3,
        help='side-by-side measurements; the median ratio is '
        'reported (at least 3)')
    parser.add_argument('--batch-size', type=positive_int, default=8)
    parser.add_argument('--modes', nargs='+', default=['grad', 'update'])
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    cfg = Config.fromfile(CONFIG)
    DefaultScope.get_instance('mwam-overhead', scope_name=cfg.default_scope)
    with tempfile.TemporaryDirectory() as data_root:
        make_synthetic_rgbt(data_root, seed=0, num_train=64, num_test=1)
        data = batches(cfg, data_root, args.batch_size, args.warmup + args.iters)
    for mode in args.modes:
        repeats = [measure(cfg, data, mode, args) for _ in range(args.repeats)]
        ratios = [r['ratio'] for r in repeats]
        print(
            json.dumps(
                dict(
                    mode=mode,
                    device=args.device,
                    batch_size=args.batch_size,
                    timed_iters=args.iters,
                    repeats=len(repeats),
                    plain_median_ms=[r['plain_ms'] for r in repeats],
                    mwam_median_ms=[r['mwam_ms'] for r in repeats],
                    ratios=ratios,
                    ratio=round(statistics.median(ratios), 4),
                    final_weights=repeats[-1]['weights'])))


def measure(cfg, data, mode, args) -> dict:
    """One side-by-side measurement: median ms of each copy and their ratio."""
    torch.manual_seed(0)
    plain = MODELS.build(copy.deepcopy(cfg.model)).to(args.device)
    balanced = copy.deepcopy(plain)
    runners = {}
    for name, model in (('plain', plain), ('mwam', balanced)):
        model.train()
        runners[name] = SimpleNamespace(
            model=model,
            optim_wrapper=build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)),
            message_hub=MessageHub.get_instance(
                f'overhead-{mode}-{name}-{next(_hub_numbers)}'),
            iter=0,
            seed=0)
    hook = MWAMHook(apply=mode)
    hook.before_run(runners['mwam'])
    hook.before_train(runners['mwam'])
    times = dict(plain=[], mwam=[])
    for i, batch in enumerate(data):
        order = ['plain', 'mwam'] if i % 2 == 0 else ['mwam', 'plain']
        for name in order:
            runner = runners[name]
            sync(args.device)
            t0 = time.perf_counter()
            if name == 'mwam':
                runner.iter = i  # the FRM grid's offset is drawn per iteration
                hook.before_train_iter(runner, i)
            runner.model.train_step(batch, runner.optim_wrapper)
            if name == 'mwam':
                hook.after_train_iter(runner, i)
            sync(args.device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    hook.after_train(runners['mwam'])
    plain_ms = statistics.median(times['plain']) * 1000
    mwam_ms = statistics.median(times['mwam']) * 1000
    return dict(
        plain_ms=round(plain_ms, 1),
        mwam_ms=round(mwam_ms, 1),
        ratio=round(mwam_ms / plain_ms, 4),
        weights=hook.weights)


if __name__ == '__main__':
    main()
