"""The robustness leaderboard: every method variant, several seeds, two ceilings.

Trains every variant of a config family (its base config, ``--config``, with the
method overlays of ``configs/_base_/methods`` that the variant table names:
``benchmarks/leaderboard/variants.py``, ``VARIANTS``: baseline, moddrop, mwam,
moddrop-mwam, ogm-ge, rsc-md, btw, cmpt, rsc-view, the unimodal ceilings unimodal-rgb
and unimodal-thermal, and the analysis variants) with the same data, schedule and
seeds, tests each in the robustness scenarios (``blank``, ``missing`` and
``blank-detected``: a black camera the model is not told about, and the same with
the preprocessor's dead-camera detection on) on every modality subset (a ceiling
on its own modality), per day / night split where the data has them and, with
``--degradations``, under the degradation suite; then writes
``leaderboard.{md,json,png}`` into the work dir: mean ± std over seeds, the mean
over subsets, the collapse rate, each single-camera score as a fraction of its
ceiling, marks where a variant differs from the baseline by more than two
standard errors, and each variant minus the baseline (and minus every
``--control``) paired by seed: the mean difference with its 95 % t interval.
By default 5 seeds and, on the synthetic config, 300 test scenes: what a claim
needs (the demo passes a smaller preset).

    python benchmarks/robustness_leaderboard.py [--config BASE.py]
        [--variants baseline moddrop ...] [--seeds 0 1 2 3 4] [--control VARIANT ...]
        [--work-dir DIR]
        [--epochs N | --max-iters N] [--reference-epochs N] [--curve-interval K]
        [--data-root DIR]
        [--data-seed S --night-fraction F --width W --height H
         --num-train N --num-test N]                 (synthetic config only)
        [--scenarios blank missing blank-detected] [--degradations noise blur ...]
        [--force]

Resumable: each run stores ``runs/<variant>/seed<k>/result.json``; a run whose
result exists (same config, options, seed and data) is not trained again, one
tested with other settings is only tested again, and an interrupted training goes
on from its last checkpoint. ``--force`` retrains. A GPU is used when there is
one (mmengine's default device).
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import time

from mmengine.config import DictAction

# the harness lives with the benchmarks, not in the installed package: imported
# from this checkout
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import mwam_mm  # noqa: F401,E402
from benchmarks import leaderboard as lb  # noqa: E402
from mwam_mm.engine import runner_utils  # noqa: E402
from mwam_mm.evaluation import ALL_SCENARIOS, degradations  # noqa: E402

GENERATOR_OPTIONS = ('data_seed', 'night_fraction', 'width', 'height', 'num_train',
                     'num_test')
# what a claim needs by default: 5 seeds, paired; 300 test scenes (the demo
# passes its own, smaller preset)
CLAIM_SEEDS = [0, 1, 2, 3, 4]
CLAIM_NUM_TEST = 300


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config',
        default=lb.SYNTHETIC_CONFIG,
        help='the family\'s base config, which the variants\' method overlays are '
        'applied to (default: the synthetic detector; the synthetic segmenter is '
        f'{lb.repo_relative(lb.SYNTHETIC_SEG_CONFIG)})')
    parser.add_argument(
        '--variants',
        nargs='+',
        choices=list(lb.VARIANTS),
        help='default: every variant of the table')
    parser.add_argument(
        '--control',
        nargs='+',
        default=[],
        choices=list(lb.VARIANTS),
        metavar='VARIANT',
        help='also compare every variant with these, paired by seed (the baseline '
        'always is)')
    parser.add_argument(
        '--seeds', type=runner_utils.non_negative_int, nargs='+', default=CLAIM_SEEDS)
    parser.add_argument('--work-dir', default='work_dirs/robustness_leaderboard')
    length = parser.add_mutually_exclusive_group()
    length.add_argument(
        '--epochs', type=runner_utils.positive_int, help='default: the config\'s')
    length.add_argument(
        '--max-iters',
        type=runner_utils.positive_int,
        help='train this many iterations (an epoch-based config: the smoke mode, '
        'no schedulers)')
    parser.add_argument(
        '--reference-epochs',
        type=runner_utils.positive_int,
        help='train the unimodal references (the ceilings) this many epochs (choose '
        'it where their curve has flattened, --curve-interval; a config trained by '
        'epochs, not with --max-iters); default: as the others')
    parser.add_argument(
        '--curve-interval',
        type=runner_utils.positive_int,
        help='validate the references every this many epochs (iterations for a '
        'config trained by iterations, or with --max-iters) while they train: their '
        'training curve and whether it has converged (or is still improving, or is '
        'undetermined), in the report')
    parser.add_argument(
        '--batch-size', type=runner_utils.positive_int, help='default: the config\'s')
    parser.add_argument(
        '--data-root',
        help='the dataset; default: the config\'s, for a synthetic config '
        'data/synthetic_rgbt (detection) or data/synthetic_rgbt_seg (segmentation); '
        'another folder for other generator options')
    generator = parser.add_argument_group(
        'synthetic data (only with the synthetic config; made if absent)')
    generator.add_argument('--data-seed', type=runner_utils.non_negative_int)
    generator.add_argument('--night-fraction', type=float)
    generator.add_argument('--width', type=runner_utils.synthetic_side)
    generator.add_argument('--height', type=runner_utils.synthetic_side)
    generator.add_argument('--num-train', type=runner_utils.positive_int)
    generator.add_argument('--num-test', type=runner_utils.positive_int)
    parser.add_argument(
        '--scenarios',
        nargs='*',
        choices=ALL_SCENARIOS,
        default=list(ALL_SCENARIOS),
        help='default: all of them, so that a black camera is reported with and '
        'without dead-camera detection')
    parser.add_argument('--fill', choices=['zero', 'mean'], default='zero')
    parser.add_argument('--metric', help='default: the evaluator\'s headline metric')
    parser.add_argument(
        '--splits',
        choices=['auto', 'none'],
        default='auto',
        help='auto: day / night scores where the dataset lists them')
    parser.add_argument(
        '--degradations',
        nargs='*',
        choices=list(degradations.DEGRADATIONS) + ['all'],
        default=[],
        help='also test under these degradations (not the ceilings)')
    parser.add_argument(
        '--severities',
        type=runner_utils.int_at_least(
            min(degradations.SEVERITIES), max(degradations.SEVERITIES)),
        nargs='+',
        default=list(degradations.SEVERITIES))
    parser.add_argument(
        '--jobs',
        type=runner_utils.positive_int,
        default=None,
        help='runs at a time, each in its own process with cores / jobs threads '
        '(default: 2 on a CPU of 2+ cores, 1 with a GPU)')
    parser.add_argument(
        '--force', action='store_true', help='retrain runs that have a result')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='show the runs\' training and test logs (always in their work dirs)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f'{lb.TAG} {message}', flush=True)


def data_options(args) -> dict:
    """Data root options (and the synthetic data made, and its test scale)."""
    given = {
        k: getattr(args, k)
        for k in GENERATOR_OPTIONS if getattr(args, k) is not None
    }
    if not lb.is_synthetic_config(args.config):
        if given:
            raise SystemExit(
                f'{lb.TAG} the generator options {sorted(given)} apply to the '
                f'synthetic config only, not to {args.config}')
        return dict(
            cfg_options=lb.data_root_options(args.data_root) if args.data_root else {})
    # a claim's test set: at least 300 scenes (the generator's default is 100)
    params = dict(lb.SYNTHETIC_DEFAULTS, num_test=CLAIM_NUM_TEST)
    params.update({('seed' if k == 'data_seed' else k): v for k, v in given.items()})
    try:
        task = lb.synthetic_task(args.config)
    except ValueError as e:
        raise SystemExit(f'{lb.TAG} {e}')
    root = args.data_root or lb.default_synthetic_root(task, **params)
    lb.ensure_synthetic_data(root, log=log, task=task, **params)
    return dict(
        cfg_options=lb.data_root_options(root),
        test_scale=(params['width'], params['height']),
        synthetic=dict(root=root, task=task, **params))


def stream_checkpoints(args, variant: str, seed: int, options) -> dict:
    """``{modality: checkpoint}`` of the same seed's reference runs that
    ``variant``'s streams start from (empty for most variants): each reference's
    final checkpoint in its run dir."""
    checkpoints = {}
    for source in lb.stream_sources(variant):
        run_dir = osp.join(args.work_dir, 'runs', source, f'seed{seed}')
        cfg = lb.build_run_config(args.config, run_dir, seed, options, source)
        checkpoints[lb.ceiling_modality(source)] = osp.abspath(
            osp.join(run_dir, lb.final_checkpoint(cfg)))
    return checkpoints


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    try:
        args.config = lb.existing_config(args.config)
    except FileNotFoundError as e:
        raise SystemExit(f'{lb.TAG} {e}')
    if args.reference_epochs is not None and args.max_iters is not None:
        raise SystemExit(
            f'{lb.TAG} --reference-epochs {args.reference_epochs} trains the '
            f'references by epochs, and --max-iters {args.max_iters} trains every '
            'run, the references too, by iterations: give one of them')
    variants = args.variants or list(lb.VARIANTS)
    if lb.BASELINE not in variants:
        log(f'no {lb.BASELINE!r} among the variants: nothing is marked')
    data = data_options(args)
    degradation_tests = None
    if args.degradations:
        names = None if 'all' in args.degradations else args.degradations
        degradation_tests = degradations.degradation_plan(None, names, args.severities)
    options = lb.RunOptions(
        epochs=args.epochs,
        max_iters=args.max_iters,
        reference_epochs=args.reference_epochs,
        curve_interval=args.curve_interval,
        batch_size=args.batch_size,
        cfg_options=dict(data['cfg_options'], **(args.cfg_options or {})),
        test_scale=data.get('test_scale'),
        scenarios=args.scenarios,
        fill=args.fill,
        metric=args.metric,
        splits='auto' if args.splits == 'auto' else None,
        degradations=degradation_tests,
        quiet=not args.verbose)
    if not args.scenarios and not degradation_tests:
        raise SystemExit(f'{lb.TAG} nothing to test: no scenario and no degradation')

    for variant in variants:  # cmpt-frozen starts from the references' streams
        absent = [v for v in lb.stream_sources(variant) if v not in variants]
        if absent:
            raise SystemExit(f'{lb.TAG} {variant} starts its streams from the runs of '
                             f'{absent} of the same seed: add them to --variants')
    plan = []  # (variant, seed, run dir, result path, status, stream checkpoints)
    for seed in args.seeds:  # seed-major: every variant has a score early
        for variant in variants:
            run_dir = osp.join(args.work_dir, 'runs', variant, f'seed{seed}')
            path = osp.join(run_dir, lb.RESULT_FILE)
            if args.force and osp.isdir(run_dir):
                shutil.rmtree(run_dir)
            try:  # a schedule the config cannot take, a stored run of another setup
                checkpoints = stream_checkpoints(args, variant, seed, options)
                cfg = lb.build_run_config(args.config, run_dir, seed, options, variant,
                                          checkpoints)
                setup = lb.training_setup(cfg, args.config, seed, variant)
                status = lb.stored_status(run_dir, setup, options.evaluation())
            except ValueError as e:
                raise SystemExit(f'{lb.TAG} {variant} seed {seed}: {e}')
            plan.append((variant, seed, run_dir, path, status, checkpoints))
    to_do = sum(status != 'done' for *_, status, _ in plan)
    log(f'{len(plan)} runs ({len(variants)} variants x {len(args.seeds)} seeds), '
        f'{len(plan) - to_do} finished before; work dir {args.work_dir}')
    jobs = args.jobs or lb.default_jobs()
    if jobs < 1:
        raise SystemExit(f'{lb.TAG} --jobs must be >= 1, got {args.jobs}')
    progress = lb.Progress(len(plan), to_do, jobs=min(jobs, max(1, to_do)))
    results = {v: {} for v in variants}
    failed = []
    pending = []
    for variant, seed, run_dir, path, status, checkpoints in plan:
        if status == 'done':
            results[variant][seed] = lb.load_result(path)
            print(progress.line(variant, seed, None), flush=True)
        else:
            pending.append(
                (args.config, run_dir, seed, options, variant, path, checkpoints))
    if jobs > 1:  # the longest runs first, so that no worker idles at the end
        pending.sort(key=lambda job: -lb.expected_cost(job[4]))
    if pending:
        log(f'{len(pending)} run(s) to do, {min(jobs, len(pending))} at a time')
    # runs that start from other runs' checkpoints go after them
    waves = [[job for job in pending if not job[6]], [job for job in pending if job[6]]]
    for wave in waves:
        for job, result, error, seconds in lb.run_jobs(wave, jobs):
            run_dir, seed, variant = job[1], job[2], job[4]
            if error is not None:  # one broken variant does not stop the others
                os.makedirs(run_dir, exist_ok=True)
                with open(osp.join(run_dir, 'error.txt'), 'w') as f:
                    f.write(error)
                last = error.strip().splitlines()[-1]
                failed.append(f'{variant} seed {seed}: {last} (traceback in '
                              f'{osp.join(run_dir, "error.txt")})')
                print(
                    progress.line(variant, seed, seconds) + f' (FAILED: {last})',
                    flush=True)
                continue
            results[variant][seed] = result
            print(progress.line(variant, seed, seconds), flush=True)
    # in the order of the seeds, whatever order the runs ended in
    results = {v: [rs[k] for k in sorted(rs)] for v, rs in results.items()}

    results = {v: rs for v, rs in results.items() if rs}
    if not results:
        raise SystemExit(f'{lb.TAG} every run failed:\n' + '\n'.join(failed))
    controls = [c for c in args.control if c in results]
    if len(controls) < len(args.control):
        print(f'{lb.TAG} --control: no results for '
              f'{sorted(set(args.control) - set(controls))}; compared without them')
    board = lb.aggregate(results, args.scenarios or None, controls=controls)
    extra = dict(
        config=args.config,
        variant_names=variants,
        epochs=args.epochs,
        max_iters=args.max_iters,
        reference_epochs=args.reference_epochs,
        curve_interval=args.curve_interval,
        fill=args.fill,
        data=data.get('synthetic') or dict(root=args.data_root),
        train_seconds={
            v: [r['train_seconds'] for r in rs]
            for v, rs in results.items()
        },
        jobs=jobs,
        wall_seconds=time.time() - t_start,
        command=' '.join(['benchmarks/robustness_leaderboard.py'] +
                         list(sys.argv[1:] if argv is None else argv)))
    text = (f'{len(plan)} runs ({len(plan) - to_do} reused, {len(failed)} failed); '
            'wall time of this '
            f'invocation {lb.format_duration(extra["wall_seconds"])}; config '
            f'{lb.repo_relative(args.config)}.')
    report = lb.write_leaderboard(board, args.work_dir, extra=extra, extra_text=text)
    print('\n' + report['text'])
    written = [report[k] for k in ('markdown', 'json', 'chart') if report[k]]
    log(f'written: {", ".join(written)}')
    if failed:
        raise SystemExit(f'{lb.TAG} {len(failed)} run(s) failed and are not in the '
                         'leaderboard:\n' + '\n'.join(failed))


if __name__ == '__main__':
    main()
