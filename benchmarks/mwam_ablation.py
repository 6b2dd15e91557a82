"""What does MWAM do? Five arms on the synthetic benchmark, paired by seed.

    A  moddrop             feature-level modality dropout (the control of B, C, D)
    B  moddrop-mwam        MWAM on modality dropout (as its authors run it)
    C  moddrop-constk      dropout + a constant weight per branch equal to B's logged
                           mean K (a per-branch learning-rate cut, no FRM dynamics)
    D  moddrop-mwam-swap   B with the two branches' K swapped every iteration
    E  mwam vs baseline    MWAM without dropout, against plain fused training

Every arm trains the same synthetic detector config (12 epochs by default) on the
same data with the same seeds, and is tested in both robustness scenarios on every
modality subset. C runs after B (it needs B's mean K). Reported per arm, scenario and
subset: the mean over seeds, the mean of the per-seed differences to the arm's
control with a 95 % t interval (paired by seed), and the mean K per branch; for B and
E also how K moves between consecutive iterations (signal or noise). Written to
``<work-dir>/ablation.{md,json}``; runs are stored and reused as in
``benchmarks/robustness_leaderboard.py`` (``runs/<variant>/seed<k>``).

    python benchmarks/mwam_ablation.py [--seeds 0 1 2 3 4] [--epochs 12]
        [--num-test 300] [--work-dir DIR] [--jobs N] [--max-iters N (smoke)]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import mwam_mm  # noqa: F401,E402
from benchmarks import leaderboard as lb  # noqa: E402
from mwam_mm.engine import runner_utils  # noqa: E402
from mwam_mm.evaluation import paired_difference, seed_statistics  # noqa: E402

#: arm -> (variant, control variant)
ARMS = {
    'A': ('moddrop', None),
    'B': ('moddrop-mwam', 'moddrop'),
    'C': ('moddrop-constk', 'moddrop'),
    'D': ('moddrop-mwam-swap', 'moddrop'),
    'E': ('mwam', 'baseline'),
}
#: variants trained first; C needs B's mean K
FIRST = ('moddrop', 'moddrop-mwam', 'moddrop-mwam-swap', 'mwam', 'baseline')
SECOND = ('moddrop-constk', )
TAG = '[ablation]'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--seeds',
        type=runner_utils.non_negative_int,
        nargs='+',
        default=[0, 1, 2, 3, 4])
    parser.add_argument('--epochs', type=runner_utils.positive_int, default=12)
    parser.add_argument(
        '--max-iters',
        type=runner_utils.positive_int,
        help='smoke mode instead of epochs')
    parser.add_argument('--batch-size', type=runner_utils.positive_int, default=4)
    parser.add_argument('--width', type=runner_utils.synthetic_side, default=128)
    parser.add_argument('--height', type=runner_utils.synthetic_side, default=96)
    parser.add_argument('--num-train', type=runner_utils.positive_int, default=400)
    parser.add_argument('--num-test', type=runner_utils.positive_int, default=300)
    parser.add_argument('--data-root', help='default: by the generator options')
    parser.add_argument('--work-dir', default='work_dirs/mwam_ablation')
    parser.add_argument(
        '--jobs',
        type=runner_utils.positive_int,
        help='runs at a time (default: as the '
        'leaderboard: 2 on a CPU, 1 on a GPU)')
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f'{TAG} {message}', flush=True)


def run_all(variants, seeds, options, work_dir, jobs, extra_options=None):
    """Train and test ``variants`` x ``seeds`` (stored runs reused); returns
    ``{variant: {seed: result}}``."""
    extra_options = extra_options or {}
    results, pending = {v: {} for v in variants}, []
    for seed in seeds:
        for variant in variants:
            cfg_path = lb.SYNTHETIC_CONFIG
            opts = options
            if variant in extra_options:
                opts = lb.RunOptions(**dict(
                    vars(options),
                    cfg_options=dict(options.cfg_options, **extra_options[variant])))
            run_dir = osp.join(work_dir, 'runs', variant, f'seed{seed}')
            path = osp.join(run_dir, lb.RESULT_FILE)
            cfg = lb.build_run_config(cfg_path, run_dir, seed, opts, variant)
            setup = lb.training_setup(cfg, cfg_path, seed, variant)
            if lb.stored_status(run_dir, setup, opts.evaluation()) == 'done':
                results[variant][seed] = lb.load_result(path)
            else:
                pending.append((cfg_path, run_dir, seed, opts, variant, path))
    log(f'{len(pending)} run(s) to do of {len(variants) * len(seeds)}, '
        f'{min(jobs, max(1, len(pending)))} at a time')
    progress = lb.Progress(
        len(pending), len(pending), jobs=min(jobs,
                                             len(pending) or 1))
    failed = []
    for job, result, error, seconds in lb.run_jobs(pending, jobs):
        _, run_dir, seed, _, variant, _ = job
        if error is not None:
            os.makedirs(run_dir, exist_ok=True)
            with open(osp.join(run_dir, 'error.txt'), 'w') as f:
                f.write(error)
            failed.append(f'{variant} seed {seed}: {error.strip().splitlines()[-1]}')
            print(progress.line(variant, seed, seconds) + ' (FAILED)', flush=True)
            continue
        results[variant][seed] = result
        print(progress.line(variant, seed, seconds), flush=True)
    if failed:
        raise SystemExit(f'{TAG} {len(failed)} run(s) failed:\n' + '\n'.join(failed))
    return results


def weight_history(result: dict, name: str):
    history = result.get('history', {})
    return history.get(f'mwam_k_{name}') or history.get(f'branch_k_{name}') or []


def mean_weights(results: dict, names) -> dict:
    """``{modality: mean K over every iteration of every seed}``."""
    return {
        n: statistics.fmean(k for r in results.values() for k in weight_history(r, n))
        for n in names
    }


def k_dynamics(results: dict, names) -> dict:
    """How K moves: per branch the std over iterations, the mean |K_t - K_t-1|,
    the lag-1 autocorrelation, and how often the slowed branch changes between
    consecutive iterations (means over seeds)."""

    def lag1(values):
        mean = statistics.fmean(values)
        centred = [v - mean for v in values]
        denom = sum(c * c for c in centred)
        return sum(a * b for a, b in zip(centred, centred[1:])) / denom if denom \
            else float('nan')

    out = {n: dict(std=[], step=[], lag1=[]) for n in names}
    flips = []
    for result in results.values():
        series = {n: weight_history(result, n) for n in names}
        for n, values in series.items():
            out[n]['std'].append(statistics.pstdev(values))
            out[n]['step'].append(
                statistics.fmean(abs(b - a) for a, b in zip(values, values[1:])))
            out[n]['lag1'].append(lag1(values))
        first, second = names
        slowed = [a < b for a, b in zip(series[first], series[second])]
        flips.append(
            sum(x != y for x, y in zip(slowed, slowed[1:])) / max(1,
                                                                  len(slowed) - 1))
    summary = {
        n: {
            k: statistics.fmean(v)
            for k, v in stats.items()
        }
        for n, stats in out.items()
    }
    summary['slowed_branch_changes'] = statistics.fmean(flips)
    summary[f'{names[0]}_slowed'] = statistics.fmean(
        statistics.fmean(
            a < b
            for a, b in zip(weight_history(r, names[0]), weight_history(r, names[1])))
        for r in results.values())
    return summary


def paired(arm: dict, control: dict, scenario: str, subset: str) -> dict:
    """The arm's score minus its control's, paired by seed (the mean of the
    per-seed differences with its 95 % t interval)."""
    seeds = sorted(set(arm) & set(control))
    return paired_difference([
        arm[s]['scenarios'][scenario][subset] -
        control[s]['scenarios'][scenario][subset] for s in seeds
    ])


def arm_table(results: dict, scenarios, subsets, names) -> dict:
    table = {}
    for arm, (variant, control) in ARMS.items():
        runs = results[variant]
        entry = dict(variant=variant, control=control, scores={}, paired={})
        for scenario in scenarios:
            entry['scores'][scenario] = {
                s: seed_statistics([r['scenarios'][scenario][s] for r in runs.values()])
                for s in subsets
            }
            if control is not None:
                entry['paired'][scenario] = {
                    s: paired(runs, results[control], scenario, s)
                    for s in subsets
                }
        if any(weight_history(r, names[0]) for r in runs.values()):
            entry['mean_k'] = mean_weights(runs, names)
        table[arm] = entry
    return table


def markdown(table: dict, scenarios, subsets, names, dynamics: dict) -> str:
    lines = []
    for scenario in scenarios:
        lines += [
            f'\nScenario `{scenario}` (mAP50; mean ± std over seeds; Δ: mean of the '
            'per-seed differences to the control, [95 % t interval], `*` where it '
            'excludes 0):', ''
        ]
        head = ['arm', 'variant', 'control'] + list(subsets) + \
            [f'Δ {s}' for s in subsets] + [f'mean K {n}' for n in names]
        lines.append('| ' + ' | '.join(head) + ' |')
        lines.append('|' + '---|' * len(head))
        for arm, entry in table.items():
            cells = [arm, entry['variant'], entry['control'] or '']
            cells += [lb.format_stats(entry['scores'][scenario][s]) for s in subsets]
            for s in subsets:
                p = entry['paired'].get(scenario, {}).get(s)
                if p is None:
                    cells.append('')
                elif p['low'] is None:
                    cells.append(f'{p["diff"]:+.3f}')
                else:
                    mark = ' *' if p['excludes_zero'] else ''
                    cells.append(
                        f'{p["diff"]:+.3f} [{p["low"]:+.3f}, {p["high"]:+.3f}]{mark}')
            k = entry.get('mean_k')
            cells += [f'{k[n]:.3f}' if k else '1' for n in names]
            lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'How K moves (mean over seeds; per iteration):', '']
    head = [
        'arm', 'branch', 'std of K', 'mean abs(K_t - K_t-1)', 'lag-1 autocorrelation'
    ]
    lines.append('| ' + ' | '.join(head) + ' |')
    lines.append('|' + '---|' * len(head))
    for arm, dyn in dynamics.items():
        for n in names:
            d = dyn[n]
            lines.append(f'| {arm} | {n} | {d["std"]:.3f} | {d["step"]:.3f} | '
                         f'{d["lag1"]:.2f} |')
    for arm, dyn in dynamics.items():
        lines.append(
            f'\n{arm}: {names[0]} is the slowed branch (smaller K) in '
            f'{100 * dyn[f"{names[0]}_slowed"]:.0f} % of iterations; the slowed '
            f'branch changes between consecutive iterations in '
            f'{100 * dyn["slowed_branch_changes"]:.0f} % of them.')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    params = dict(
        lb.SYNTHETIC_DEFAULTS,
        width=args.width,
        height=args.height,
        num_train=args.num_train,
        num_test=args.num_test)
    root = args.data_root or lb.default_synthetic_root(**params)
    lb.ensure_synthetic_data(root, log=log, **params)
    options = lb.RunOptions(
        epochs=None if args.max_iters else args.epochs,
        max_iters=args.max_iters,
        batch_size=args.batch_size,
        cfg_options=lb.data_root_options(root),
        test_scale=(args.width, args.height),
        splits=None,
        quiet=True)
    jobs = args.jobs or lb.default_jobs()
    results = run_all(FIRST, args.seeds, options, args.work_dir, jobs)
    first = results['moddrop-mwam'][args.seeds[0]]
    names = first['modalities']
    k_b = mean_weights(results['moddrop-mwam'], names)
    log('B\'s mean K: ' + ', '.join(f'{n} {k:.4f}' for n, k in k_b.items()))
    constant = {
        'custom_hooks': [
            dict(
                type='BranchWeightHook',
                weights={
                    n: round(k, 4)
                    for n, k in k_b.items()
                })
        ]
    }
    results.update(
        run_all(SECOND, args.seeds, options, args.work_dir, jobs,
                {'moddrop-constk': constant}))
    scenarios = list(first['scenarios'])
    subsets = list(first['subsets'])
    table = arm_table(results, scenarios, subsets, names)
    dynamics = {
        arm: k_dynamics(results[variant], names)
        for arm, variant in (('B', 'moddrop-mwam'), ('D', 'moddrop-mwam-swap'),
                             ('E', 'mwam'))
    }
    wall = time.time() - t_start
    train = [r['train_seconds'] for rs in results.values() for r in rs.values()]
    text = (f'Seeds {args.seeds}; {args.epochs if not args.max_iters else 0} epochs'
            f'{f" ({args.max_iters} iterations, smoke)" if args.max_iters else ""}, '
            f'batch {args.batch_size}, {args.width}x{args.height}, '
            f'{args.num_train} training / {args.num_test} test scenes; C used K = ' +
            ', '.join(f'{n} {k:.4f}' for n, k in k_b.items()) +
            f'. Wall time of this invocation {lb.format_duration(wall)}; '
            f'{len(train)} runs, mean training time '
            f'{lb.format_duration(statistics.fmean(train))}.\n')
    report = text + markdown(table, scenarios, subsets, names, dynamics)
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'ablation.md'), 'w') as f:
        f.write(report)
    with open(osp.join(args.work_dir, 'ablation.json'), 'w') as f:
        json.dump(
            dict(table=table, dynamics=dynamics, constant_k=k_b, args=vars(args)),
            f,
            indent=1)
    print(report)
    log(f'written: {osp.join(args.work_dir, "ablation.md")}')


if __name__ == '__main__':
    main()
