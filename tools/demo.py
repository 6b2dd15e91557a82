"""The built-in demo: the robustness leaderboard's core on the synthetic data, on CPU.

Makes the synthetic RGB-T dataset (LLVIP layout, 128x96, day and night) if absent,
then runs ``benchmarks/robustness_leaderboard.py`` with the demo's preset: the same
slim dual-stream RetinaNet, schedule and seeds for

  baseline          no balancing
  moddrop           modality dropout as the authors' release trains: kept subset
                    uniform over the non-empty subsets, dropped at the feature level
  moddrop-mwam      MWAM (paper preset, gradients scaled) on top of that dropout:
                    MWAM as its authors run it
  rsc-view          the best of the other methods on this benchmark (see README):
                    the detector's own head also trained on each single-camera
                    view of the fused feature (ours, after RSC)
  unimodal-rgb      the ceilings: the same detector on one camera only
  unimodal-thermal

(``--variants`` takes every variant of the benchmark's table by name,
``benchmarks/leaderboard/variants.py``: ``mwam``, ``ogm-ge``, ``rsc-md``, ``btw``,
``cmpt``, ``mwam-update``, ``moddrop-input``, ``mwam-robust``, ...; each is
``retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py`` with the method overlays of
``configs/_base_/methods`` it names, the same config as the leaf
``..._synthetic_<variant>.py``) over seeds 0, 1, 2; tests each with every modality
subset in the ``blank`` and ``missing`` scenarios (a ceiling on its own camera), and
writes the leaderboard (``leaderboard.md/json/png``: mean +- std over seeds, mean
over subsets, collapse rate, each single-camera score as a fraction of its ceiling,
differences to the baseline beyond two standard errors marked) and
``mwam_weights.png`` (MWAM's FRM and K, and the gradient norm reaching each branch,
per iteration) into the work dir. Runs go two at a time on a CPU (one thread each),
one at a time on a GPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--seeds 0 1 2]
        [--variants ...] [--epochs 4] [any option of the benchmark]

Finished runs are reused (``--force`` retrains).

The benchmark and its harness (``benchmarks/``) are not part of the installed
package: like the benchmarks, this script puts the checkout's root on
``sys.path`` and imports them as ``benchmarks.*``.
"""
import argparse
import json
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import leaderboard as lb  # noqa: E402
from benchmarks import robustness_leaderboard  # noqa: E402
from mwam_mm.engine import runner_utils  # noqa: E402
from mwam_mm.evaluation import ALL_SCENARIOS  # noqa: E402

BEST_OTHER = 'rsc-view'
# the other methods, by the benchmark's variant names; not in the default run
# (15-minute budget), each one --variants away
OTHER_METHODS = ('mwam', 'ogm-ge', 'rsc-md', 'btw', 'cmpt')
DEFAULT_VARIANTS = [
    'baseline', 'moddrop', 'moddrop-mwam', BEST_OTHER, 'unimodal-rgb',
    'unimodal-thermal'
]
# each run made cheap enough for 18 runs in 15 minutes on 2 cores (128x96 images,
# 4 epochs of 100 batches of 4), the full-modality baseline still >= 0.5 mAP50
PRESET = dict(
    width=128,
    height=96,
    epochs=4,
    batch_size=4,
    seeds=[0, 1, 2],
    num_train=400,
    num_test=100,
    # a black camera with and without detection is the full benchmark's question;
    # the demo keeps to two scenarios for its budget
    scenarios=['blank', 'missing'])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--variants',
        nargs='+',
        default=DEFAULT_VARIANTS,
        choices=list(lb.VARIANTS),
        help=f'default: {" ".join(DEFAULT_VARIANTS)}; also '
        f'{" ".join(OTHER_METHODS)} and the analysis variants')
    parser.add_argument(
        '--seeds',
        type=runner_utils.non_negative_int,
        nargs='+',
        default=PRESET['seeds'])
    parser.add_argument(
        '--epochs', type=runner_utils.positive_int, default=PRESET['epochs'])
    parser.add_argument(
        '--max-iters',
        type=runner_utils.positive_int,
        help='train this many iterations (smoke runs)')
    parser.add_argument(
        '--batch-size', type=runner_utils.positive_int, default=PRESET['batch_size'])
    parser.add_argument(
        '--width', type=runner_utils.synthetic_side, default=PRESET['width'])
    parser.add_argument(
        '--height', type=runner_utils.synthetic_side, default=PRESET['height'])
    parser.add_argument(
        '--num-train', type=runner_utils.positive_int, default=PRESET['num_train'])
    parser.add_argument(
        '--num-test', type=runner_utils.positive_int, default=PRESET['num_test'])
    parser.add_argument('--data-root', help='default: chosen by the benchmark')
    parser.add_argument('--data-seed', type=runner_utils.non_negative_int)
    parser.add_argument('--night-fraction', type=float)
    parser.add_argument(
        '--scenarios',
        nargs='+',
        choices=list(ALL_SCENARIOS),
        default=PRESET['scenarios'])
    parser.add_argument('--jobs', type=runner_utils.positive_int)
    parser.add_argument('--force', action='store_true')
    return parser.parse_args(argv)


def benchmark_argv(args) -> list:
    argv = [
        '--work-dir', args.work_dir, '--variants', *args.variants, '--seeds',
        *map(str, args.seeds), '--batch-size',
        str(args.batch_size)
    ]
    argv += (['--max-iters', str(args.max_iters)]
             if args.max_iters else ['--epochs', str(args.epochs)])
    for name in ('width', 'height', 'num_train', 'num_test', 'data_root', 'data_seed',
                 'night_fraction', 'jobs'):
        value = getattr(args, name)
        if value is not None:
            argv += ['--' + name.replace('_', '-'), str(value)]
    argv += ['--scenarios', *args.scenarios]
    if args.force:
        argv.append('--force')
    return argv


def moving_average(values, window=25):
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot_training(histories: dict, path: str) -> None:
    """Per iteration: FRM (log scale), MWAM's K and the gradient norm reaching
    each modality's branch; K and the norms with their moving average in bold.

    Variants whose FRM and K are identical (same data and seed: FRM is computed
    on the input) are still drawn separately in the gradient-norm panel.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = (('mwam_frm_', 'FRM per modality'), ('mwam_k_', 'MWAM weight K'),
              ('grad_norm_', 'gradient norm reaching each branch'))
    fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
    for ax, (prefix, title) in zip(axes, panels):
        for variant, history in histories.items():
            for key, values in sorted(history.items()):
                if not key.startswith(prefix):
                    continue
                label = f'{variant}: {key[len(prefix):]}'
                if prefix == 'mwam_frm_':
                    ax.plot(values, label=label, linewidth=0.6)
                    continue
                line, = ax.plot(values, linewidth=0.3, alpha=0.3)
                ax.plot(
                    moving_average(values),
                    color=line.get_color(),
                    linewidth=1.5,
                    label=label)
        if prefix != 'mwam_k_':
            ax.set_yscale('log')
        ax.set_title(f'{title} (per iteration)', fontsize=9)
        ax.set_xlabel('iteration')
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    robustness_leaderboard.main(benchmark_argv(args))
    histories = {}
    for variant in args.variants:  # the first seed's training curves
        path = osp.join(args.work_dir, 'runs', variant, f'seed{args.seeds[0]}',
                        lb.RESULT_FILE)
        history = json.load(open(path)).get('history') if osp.isfile(path) else None
        if history:
            histories[variant] = history
    if histories:
        path = osp.join(args.work_dir, 'mwam_weights.png')
        plot_training(histories, path)
        print(f'{lb.TAG} training curves (seed {args.seeds[0]}): {path}')
        means = {
            v: {
                k: statistics.fmean(x[len(x) // 2:])
                for k, x in sorted(h.items()) if x
            }
            for v, h in histories.items()
        }
        with open(osp.join(args.work_dir, 'second_half_means.json'), 'w') as f:
            json.dump(means, f, indent=1)


if __name__ == '__main__':
    main()
