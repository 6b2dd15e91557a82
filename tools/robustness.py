"""Robustness of a trained model: missing modalities and degraded modalities.

Runs the test loop once per non-empty subset of modalities (RGB-T: both, RGB-only,
thermal-only), blanking the others, in two scenarios: ``blank`` (the model is not
told) and ``missing`` (the samples are marked missing_modalities); with
``--degradations``, once per degradation, modality and severity with every
modality present (``noise``, ``blur``, ``low-light`` and ``overexposure`` (RGB
only by default), ``shift``; see ``mwam_mm/evaluation/degradations.py``). A
unimodal model (``ignore_modalities``) is tested on its own modality. Where the
dataset lists day and night samples (the synthetic data, MFNet) every score is
also given per split. Writes robustness.md, robustness.json and robustness.png
(score per subset, mean, collapse rate, per scenario; the degradation table per
degradation and severity, and the robustness score per modality) and, with
degradations, robustness_degradations.png into the work dir.

    python tools/robustness.py CONFIG CHECKPOINT [--work-dir DIR]
        [--fill zero|mean] [--scenarios blank missing] [--metric KEY]
        [--degradations noise blur low-light overexposure shift | all]
        [--severities 1 2 3 4 5] [--degrade-modalities rgb thermal]
        [--degradation-seed 0] [--splits auto|none]
        [--name VARIANT] [--allow-partial-checkpoint] [--cfg-options k=v ...]

A checkpoint whose tensors do not fit the config's model is refused with a summary,
unless --allow-partial-checkpoint is given.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

import mwam_mm  # noqa: F401
from mwam_mm.engine import build_runner, explain_registry_errors, load_config
from mwam_mm.engine.runner_utils import (add_checkpoint_arguments, add_checkpoint_check,
                                         int_at_least, non_negative_int)
from mwam_mm.evaluation import (ALL_SCENARIOS, DEGRADATIONS, SCENARIOS, SEVERITIES,
                                collapse_rate, degradation_plan, evaluate_robustness,
                                lower_is_better, summarize, write_report)
from mwam_mm.modality import non_empty_subsets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='where the report goes')
    parser.add_argument(
        '--fill',
        choices=['zero', 'mean'],
        default='zero',
        help='what a missing modality becomes (default: zero)')
    parser.add_argument(
        '--scenarios',
        nargs='*',
        choices=ALL_SCENARIOS,
        default=list(SCENARIOS),
        help='blank: the model is not told a camera is missing; '
        'missing: it is told (default: both; none with --degradations alone); '
        "blank-detected: as blank, with the data preprocessor's dead-camera "
        'check on (it marks a constant frame missing)')
    parser.add_argument(
        '--degradations',
        nargs='*',
        choices=list(DEGRADATIONS) + ['all'],
        default=[],
        help='also test with one modality degraded: ' + ', '.join(DEGRADATIONS) +
        ' (low-light and overexposure: RGB only, unless --degrade-modalities '
        'names others), or all')
    parser.add_argument(
        '--severities',
        type=int_at_least(min(SEVERITIES), max(SEVERITIES)),
        nargs='+',
        default=list(SEVERITIES),
        help='degradation severities, 1 (mild) to 5 (default: all)')
    parser.add_argument(
        '--degrade-modalities',
        nargs='+',
        help='the modalities to degrade, each with every degradation given '
        '(default: each degradation\'s own)')
    parser.add_argument(
        '--degradation-seed',
        type=non_negative_int,
        default=0,
        help='seed of the per-image noise and shift directions (default 0)')
    parser.add_argument(
        '--splits',
        choices=['auto', 'none'],
        default='auto',
        help='auto (default): also score the day and night samples where the '
        'dataset lists them')
    parser.add_argument(
        '--metric',
        help='metric key (default: mIoU, COCO bbox mAP '
        'or VOC mAP, whichever the evaluator gives)')
    parser.add_argument(
        '--name', help='variant name in the report '
        '(default: the config name)')
    add_checkpoint_arguments(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(argv)


def robustness(config,
               checkpoint,
               work_dir=None,
               fill='zero',
               metric=None,
               name=None,
               cfg_options=None,
               scenarios=SCENARIOS,
               allow_partial_checkpoint=False,
               degradations=(),
               severities=SEVERITIES,
               degrade_modalities=None,
               degradation_seed=0,
               splits='auto'):
    """Evaluate ``checkpoint`` on every modality subset in each scenario, and
    under the degradations asked for.

    A checkpoint that does not fit the config's model is refused
    (:class:`mwam_mm.compat.CheckpointMatchHook`) unless
    ``allow_partial_checkpoint``.

    Args:
        degradations (Sequence[str]): Degradation names, or ``['all']``; empty:
            none.
        severities (Sequence[int]): Their severities.
        degrade_modalities (Sequence[str], optional): Modalities to degrade;
            default: each degradation's own (low-light and overexposure: RGB
            only); given: every degradation on each.
        degradation_seed (int): Seed of the per-image draws.
        splits: ``'auto'`` or None (see
            :func:`mwam_mm.evaluation.evaluate_robustness`).

    Returns:
        tuple: The metric, ``{scenario: summary}`` and the report's paths.
    """
    scenarios = list(scenarios or [])
    degradations = list(degradations or [])
    if not scenarios and not degradations:
        raise ValueError('nothing to test: give --scenarios and/or --degradations')
    cfg = load_config(config, cfg_options, work_dir)
    cfg.load_from = checkpoint
    add_checkpoint_check(cfg, allow_partial_checkpoint)
    runner = build_runner(cfg)
    backbone = runner.model.backbone
    layout = mwam_mm.ModalityLayout.build(getattr(backbone, 'layout', None))
    # a model that ignores modalities (a unimodal ceiling) is tested on subsets of
    # the ones it uses: without them it has no input
    ignored = list(getattr(backbone, 'ignored', []) or [])
    used = [n for n in layout.names if n not in ignored]
    subsets = non_empty_subsets(used)
    plan = None
    if degradations:
        plan = degradation_plan(layout, None if 'all' in degradations else degradations,
                                severities, degrade_modalities)
        plan = [step for step in plan if step[1] in used]
        if not plan:
            raise ValueError(f'nothing to degrade: the model uses only {used}')
    with explain_registry_errors():
        result = evaluate_robustness(
            runner,
            layout,
            fill,
            metric,
            scenarios,
            subsets=subsets,
            splits=splits,
            degradations=plan,
            seed=degradation_seed,
            same_in_all_scenarios=bool(ignored) and len(used) == 1)
    metric = result['metric']
    lower_better = lower_is_better(metric)

    def summarize_scores(scores):
        if not ignored:
            return summarize(scores, layout, lower_better)
        names = list(scores)  # the used subsets, the largest first
        return dict(
            scores=scores,
            mean=sum(scores.values()) / len(names),
            collapse_rate=collapse_rate(scores, names, lower_better))

    summaries = {
        s: summarize_scores(per_subset)
        for s, per_subset in result['scenarios'].items()
    }
    name = name or osp.splitext(osp.basename(config))[0]
    per_scenario = {s: {name: summary} for s, summary in summaries.items()}
    per_split = {
        split: {
            s: {
                name: summarize_scores(per_subset)
            }
            for s, per_subset in per.items()
        }
        for split, per in result['splits'].items()
    }
    report = write_report(
        per_scenario,
        metric,
        cfg.work_dir,
        extra=dict(fill=fill, checkpoint=checkpoint),
        splits=per_split,
        degradations={name: result['degradations']} if plan else None)
    return metric, summaries, report


def main():
    args = parse_args()
    _, _, report = robustness(
        args.config,
        args.checkpoint,
        args.work_dir,
        args.fill,
        args.metric,
        args.name,
        args.cfg_options,
        args.scenarios,
        args.allow_partial_checkpoint,
        degradations=args.degradations,
        severities=args.severities,
        degrade_modalities=args.degrade_modalities,
        degradation_seed=args.degradation_seed,
        splits=None if args.splits == 'none' else 'auto')
    print(open(report['markdown']).read())
    written = [
        report[k] for k in ('markdown', 'json', 'chart', 'degradation_chart')
        if k in report
    ]
    print(f'written: {", ".join(written)}')


if __name__ == '__main__':
    main()
