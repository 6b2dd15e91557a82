"""The built-in demo: MWAM against plain training and modality dropout, on CPU.

Makes the synthetic RGB-T dataset (LLVIP layout) if absent, trains the same slim
dual-stream RetinaNet with the same schedule and seed

  baseline      no balancing
  moddrop       modality dropout as the authors' release trains: kept subset
                uniform over the non-empty subsets, dropped at the feature level
  moddrop-mwam  MWAM (paper preset, gradients scaled) on top of that dropout:
                MWAM as its authors run it
  mwam          MWAM alone, gradients scaled (the public release's mode)
  (mwam-update: MWAM alone, updates scaled, the paper's Algorithm 1;
   moddrop-input: input-level dropout, one modality blanked in half the samples;
   mwam-robust: MWAM with the well-conditioned FRM; only with --variants)

evaluates each with every modality subset (both, RGB-only, thermal-only) in two
scenarios, ``blank`` (the missing camera gives black frames, the model is not told)
and ``missing`` (the model is told), and writes report.md, report.json,
robustness.png and mwam_weights.png (FRM, K and the gradient norm reaching each
branch, per iteration) into the work dir.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs 12] [--seeds 0 1 2]

On a machine with a GPU, mmengine trains on it by itself.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import time

import mwam_mm  # noqa: F401
from mwam_mm.datasets import make_synthetic_rgbt
from mwam_mm.engine import build_runner, load_config
from mwam_mm.evaluation import SCENARIOS, evaluate_scenarios, summarize, write_report

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'detection',
                  'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic{}.py')
VARIANTS = {
    'baseline': '',
    'moddrop': '_moddrop',
    'moddrop-mwam': '_moddrop-mwam',
    'mwam': '_mwam',
    'mwam-update': '_mwam-update',
    # analysis only: not in the default run
    'moddrop-input': '_moddrop-input',
    'mwam-robust': '_mwam-robust',
}
# four runs keep `make demo` within 15 minutes on a 2-core CPU; the others by name
DEFAULT_VARIANTS = ['baseline', 'moddrop', 'moddrop-mwam', 'mwam']
HISTORY_PREFIXES = ('train/mwam_', 'train/grad_norm_')
METRIC = 'pascal_voc/mAP'  # VOC mAP at IoU 0.5 (mAP50)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic_rgbt')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument(
        '--max-iters',
        type=int,
        default=None,
        help='stop each run after this many iterations (smoke runs)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument(
        '--variants', nargs='+', default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-test', type=int, default=100)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--fill', choices=['zero', 'mean'], default='zero')
    parser.add_argument(
        '--scenarios', nargs='+', choices=SCENARIOS, default=list(SCENARIOS))
    return parser.parse_args()


def ensure_data(args) -> str:
    wanted = (f'seed={args.data_seed} num_train={args.num_train} '
              f'num_test={args.num_test} width={args.width} height={args.height} '
              'night_fraction=0.5 classes=person,vehicle')
    meta = osp.join(args.data_root, 'meta.txt')
    if osp.isfile(meta) and open(meta).read().strip() == wanted:
        print(f'[demo] synthetic data: {args.data_root} (present)')
        return args.data_root
    if osp.exists(args.data_root) and os.listdir(args.data_root):
        if not osp.isfile(meta):
            raise FileExistsError(
                f'{args.data_root} exists and is not a synthetic dataset made by '
                'this demo; pass another --data-root')
        import shutil
        shutil.rmtree(args.data_root)
    t0 = time.time()
    counts = make_synthetic_rgbt(
        args.data_root,
        seed=args.data_seed,
        num_train=args.num_train,
        num_test=args.num_test,
        width=args.width,
        height=args.height)
    print(f'[demo] synthetic data written to {args.data_root} in '
          f'{time.time() - t0:.0f} s: {counts}')
    return args.data_root


def train_and_evaluate(args, variant: str, seed: int) -> dict:
    work_dir = osp.join(args.work_dir, f'{variant}_seed{seed}')
    options = {
        'randomness.seed': seed,
        'train_dataloader.batch_size': args.batch_size,
        'train_dataloader.dataset.data_root': args.data_root,
        'val_dataloader.dataset.data_root': args.data_root,
        'test_dataloader.dataset.data_root': args.data_root,
        # the test pipeline's Resize (step 1) keeps test images at the data's size
        'val_dataloader.dataset.pipeline.1.scale': (args.width, args.height),
        'test_dataloader.dataset.pipeline.1.scale': (args.width, args.height),
    }
    if args.max_iters is None:
        options.update({
            'train_cfg.max_epochs': args.epochs,
            'train_cfg.val_interval': args.epochs + 1,  # evaluated below instead
            'param_scheduler.1.T_max': args.epochs,
            'param_scheduler.1.end': args.epochs,
            'default_hooks.checkpoint.interval': args.epochs,
        })
    else:  # smoke runs: a few iterations, no worker processes
        options.update({
            'train_cfg':
            dict(
                _delete_=True,
                type='IterBasedTrainLoop',
                max_iters=args.max_iters,
                val_interval=args.max_iters + 1),
            'param_scheduler': [],
            'default_hooks.checkpoint':
            dict(
                _delete_=True,
                type='CheckpointHook',
                interval=args.max_iters,
                by_epoch=False),
            'log_processor.by_epoch':
            False,
            'train_dataloader.num_workers':
            0,
            'train_dataloader.persistent_workers':
            False,
            'test_dataloader.num_workers':
            0,
            'test_dataloader.persistent_workers':
            False,
        })
    cfg = load_config(CONFIG.format(VARIANTS[variant]), options, work_dir)
    if not cfg.get('custom_hooks'):  # the same diagnostic for every variant
        cfg.custom_hooks = [dict(type='BranchGradNormHook')]
    print(f'[demo] training {variant} (seed {seed}) -> {work_dir}')
    t0 = time.time()
    runner = build_runner(cfg)
    runner.train()
    train_s = time.time() - t0
    history = {}
    for key in runner.message_hub.log_scalars:
        if key.startswith(HISTORY_PREFIXES):
            history[key[len('train/'):]] = runner.message_hub.get_scalar(
                key).data[0].tolist()
    layout = runner.model.backbone.layout
    _, scores = evaluate_scenarios(runner, layout, args.fill, METRIC, args.scenarios)
    summaries = {s: summarize(per_subset, layout) for s, per_subset in scores.items()}
    for scenario, summary in summaries.items():
        print(f'[demo] {variant} seed {seed} {scenario}: '
              f'{json.dumps(summary["scores"])}')
    print(f'[demo] {variant} seed {seed}: {train_s:.0f} s training')
    return dict(summaries=summaries, train_seconds=train_s, history=history)


def aggregate(runs: list, scenario: str) -> dict:
    """Mean over seeds (and the standard deviation when there are several)."""
    summaries = [r['summaries'][scenario] for r in runs]
    subsets = list(summaries[0]['scores'])
    out = dict(scores={}, spread={})
    for s in subsets:
        values = [summary['scores'][s] for summary in summaries]
        out['scores'][s] = statistics.fmean(values)
        out['spread'][s] = statistics.stdev(values) if len(values) > 1 else 0.0
    means = [summary['mean'] for summary in summaries]
    pcrs = [
        summary['collapse_rate'] for summary in summaries
        if summary['collapse_rate'] is not None
    ]
    out['mean'] = statistics.fmean(means)
    out['collapse_rate'] = statistics.fmean(pcrs) if pcrs else None
    out['mean_spread'] = statistics.stdev(means) if len(means) > 1 else 0.0
    out['seeds'] = len(runs)
    return out


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


def main():
    args = parse_args()
    t_start = time.time()
    ensure_data(args)
    results = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            results[variant].append(train_and_evaluate(args, variant, seed))
    summaries = {
        scenario: {
            v: aggregate(runs, scenario)
            for v, runs in results.items()
        }
        for scenario in args.scenarios
    }
    histories = {
        v: runs[0]['history']
        for v, runs in results.items() if runs[0]['history']
    }
    weights, grad_norms = {}, {}
    for v, history in histories.items():
        tail = {k: statistics.fmean(x[len(x) // 2:]) for k, x in history.items()}
        if any(k.startswith('mwam_') for k in tail):
            weights[v] = {k: x for k, x in tail.items() if k.startswith('mwam_')}
        grad_norms[v] = {k: x for k, x in tail.items() if k.startswith('grad_norm_')}
    extra = dict(
        seeds=args.seeds,
        epochs=args.epochs,
        fill=args.fill,
        data=dict(
            root=args.data_root,
            num_train=args.num_train,
            num_test=args.num_test,
            size=[args.width, args.height]),
        train_seconds={
            v: [r['train_seconds'] for r in runs]
            for v, runs in results.items()
        },
        mwam_second_half_means=weights,
        grad_norm_second_half_means=grad_norms,
        wall_seconds=time.time() - t_start)
    report = write_report(summaries, 'mAP50', args.work_dir, name='report', extra=extra)
    os.replace(report['chart'], osp.join(args.work_dir, 'robustness.png'))
    if histories:
        plot_training(histories, osp.join(args.work_dir, 'mwam_weights.png'))
    spread = ''
    if len(args.seeds) > 1:
        spread = ''.join(f'\nSpread (std over seeds) of the mean, {scenario}: ' +
                         ', '.join(f'{v} {s["mean_spread"]:.3f}'
                                   for v, s in per.items()) + '\n'
                         for scenario, per in summaries.items())
    with open(report['markdown'], 'a') as f:
        f.write(spread)
        means = {
            v: dict(weights.get(v, {}), **grad_norms.get(v, {}))
            for v in histories
        }
        if means:
            f.write('\nMWAM and the gradient norm reaching each branch, mean over '
                    'the second half of training:\n\n')
            for v, w in means.items():
                f.write(f'- {v}: ' + ', '.join(f'{k} {x:.4g}'
                                               for k, x in sorted(w.items())) + '\n')
        f.write(f'\nSeeds {args.seeds}, {args.epochs} epochs, '
                f'{args.num_train} training images; total wall time '
                f'{extra["wall_seconds"]:.0f} s.\n')
    print('\n' + open(report['markdown']).read())
    print(f'[demo] report: {report["markdown"]}, {report["json"]}, '
          f'{osp.join(args.work_dir, "robustness.png")}')


if __name__ == '__main__':
    main()
