"""The built-in demo: MWAM against plain training and modality dropout, on CPU.

Makes the synthetic RGB-T dataset (LLVIP layout) if absent, trains the same slim
dual-stream RetinaNet with the same schedule and seed

  baseline     no balancing
  moddrop      modality dropout (one modality blanked in half the samples)
  mwam         MWAM, paper preset, gradients scaled (the public release's mode)
  mwam-update  MWAM, paper preset, updates scaled (the paper's Algorithm 1)
  (mwam-robust MWAM with the well-conditioned FRM; only with --variants)

evaluates each with every modality subset (both, RGB-only, thermal-only) and writes
report.md, report.json, robustness.png and mwam_weights.png into the work dir.

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
from mwam_mm.evaluation import evaluate_subsets, summarize, write_report

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'detection',
                  'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic{}.py')
VARIANTS = {
    'baseline': '',
    'moddrop': '_moddrop',
    'mwam': '_mwam',
    'mwam-update': '_mwam-update',
    'mwam-robust': '_mwam-robust',  # analysis only: not in the default run
}
DEFAULT_VARIANTS = ['baseline', 'moddrop', 'mwam', 'mwam-update']
METRIC = 'pascal_voc/mAP'  # VOC mAP at IoU 0.5 (mAP50)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/synthetic_rgbt')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument('--max-iters', type=int, default=None,
                        help='stop each run after this many iterations (smoke runs)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--variants', nargs='+', default=DEFAULT_VARIANTS,
                        choices=list(VARIANTS))
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-test', type=int, default=100)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--data-seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--fill', choices=['zero', 'mean'], default='zero')
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
    counts = make_synthetic_rgbt(args.data_root, seed=args.data_seed,
                                 num_train=args.num_train, num_test=args.num_test,
                                 width=args.width, height=args.height)
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
            'train_cfg': dict(_delete_=True, type='IterBasedTrainLoop',
                              max_iters=args.max_iters,
                              val_interval=args.max_iters + 1),
            'param_scheduler': [],
            'default_hooks.checkpoint': dict(_delete_=True, type='CheckpointHook',
                                             interval=args.max_iters,
                                             by_epoch=False),
            'log_processor.by_epoch': False,
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
            'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False,
        })
    cfg = load_config(CONFIG.format(VARIANTS[variant]), options, work_dir)
    print(f'[demo] training {variant} (seed {seed}) -> {work_dir}')
    t0 = time.time()
    runner = build_runner(cfg)
    runner.train()
    train_s = time.time() - t0
    history = {}
    for key in runner.message_hub.log_scalars:
        if key.startswith('train/mwam_'):
            history[key[len('train/'):]] = runner.message_hub.get_scalar(
                key).data[0].tolist()
    _, scores = evaluate_subsets(runner, runner.model.backbone.layout, args.fill,
                                 METRIC)
    summary = summarize(scores, runner.model.backbone.layout)
    print(f'[demo] {variant} seed {seed}: {json.dumps(summary["scores"])} '
          f'({train_s:.0f} s training)')
    return dict(summary=summary, train_seconds=train_s, mwam_history=history)


def aggregate(runs: list) -> dict:
    """Mean over seeds (and the standard deviation when there are several)."""
    subsets = list(runs[0]['summary']['scores'])
    out = dict(scores={}, spread={})
    for s in subsets:
        values = [r['summary']['scores'][s] for r in runs]
        out['scores'][s] = statistics.fmean(values)
        out['spread'][s] = statistics.stdev(values) if len(values) > 1 else 0.0
    means = [r['summary']['mean'] for r in runs]
    pcrs = [r['summary']['collapse_rate'] for r in runs
            if r['summary']['collapse_rate'] is not None]
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


def plot_mwam(histories: dict, path: str) -> None:
    """FRM (log scale) and K per modality per iteration, K's moving average bold.

    Variants whose histories are identical (same data and seed: FRM is computed on
    the input) are drawn once.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    distinct = {}
    for variant, history in histories.items():
        same = next((v for v, h in distinct.items() if h == history), None)
        if same is None:
            distinct[variant] = history
        else:
            distinct[f'{same}, {variant}'] = distinct.pop(same)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for variant, history in distinct.items():
        for key, values in sorted(history.items()):
            modality = key.split('_', 2)[2]
            label = f'{variant}: {modality}'
            if key.startswith('mwam_frm_'):
                axes[0].plot(values, label=label, linewidth=0.6)
            else:
                line, = axes[1].plot(values, linewidth=0.3, alpha=0.4)
                axes[1].plot(moving_average(values), color=line.get_color(),
                             linewidth=1.6, label=f'{label} (moving avg 25)')
    axes[0].set_yscale('log')
    axes[0].set_title('FRM per modality (per iteration)')
    axes[1].set_title('MWAM weight K per modality')
    for ax in axes:
        ax.set_xlabel('iteration')
        ax.legend(fontsize=7)
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
    summaries = {v: aggregate(runs) for v, runs in results.items()}
    histories = {v: runs[0]['mwam_history'] for v, runs in results.items()
                 if runs[0]['mwam_history']}
    weights = {}
    for v, history in histories.items():
        tail = {k: statistics.fmean(x[len(x) // 2:]) for k, x in history.items()}
        weights[v] = tail
    extra = dict(
        seeds=args.seeds, epochs=args.epochs, fill=args.fill,
        data=dict(root=args.data_root, num_train=args.num_train,
                  num_test=args.num_test, size=[args.width, args.height]),
        train_seconds={v: [r['train_seconds'] for r in runs]
                       for v, runs in results.items()},
        mwam_second_half_means=weights,
        wall_seconds=time.time() - t_start)
    report = write_report(summaries, 'mAP50', args.work_dir, name='report',
                          extra=extra)
    os.replace(report['chart'], osp.join(args.work_dir, 'robustness.png'))
    if histories:
        plot_mwam(histories, osp.join(args.work_dir, 'mwam_weights.png'))
    spread = ''
    if len(args.seeds) > 1:
        spread = '\nSpread (std over seeds) of the mean: ' + ', '.join(
            f'{v} {s["mean_spread"]:.3f}' for v, s in summaries.items()) + '\n'
    with open(report['markdown'], 'a') as f:
        f.write(spread)
        if weights:
            f.write('\nMWAM, mean over the second half of training:\n\n')
            for v, w in weights.items():
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
