"""Missing-modality robustness of a trained model.

Runs the test loop once per non-empty subset of modalities (RGB-T: both, RGB-only,
thermal-only), blanking the others, in two scenarios: ``blank`` (the model is not
told) and ``missing`` (the samples are marked missing_modalities), and writes
robustness.md, robustness.json and robustness.png (score per subset, mean,
collapse rate, per scenario) into the work dir.

    python tools/robustness.py CONFIG CHECKPOINT [--work-dir DIR]
        [--fill zero|mean] [--scenarios blank missing] [--metric KEY]
        [--name VARIANT] [--allow-partial-checkpoint] [--cfg-options k=v ...]

A checkpoint whose tensors do not fit the config's model is refused with a summary,
unless --allow-partial-checkpoint is given.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

import mwam_mm  # noqa: F401
from mwam_mm.engine import build_runner, explain_registry_errors, load_config
from mwam_mm.engine.runner_utils import add_checkpoint_arguments, add_checkpoint_check
from mwam_mm.evaluation import SCENARIOS, evaluate_scenarios, summarize, write_report


def parse_args():
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
        nargs='+',
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help='blank: the model is not told a camera is missing; '
        'missing: it is told (default: both)')
    parser.add_argument(
        '--metric',
        help='metric key (default: mIoU, COCO bbox mAP '
        'or VOC mAP, whichever the evaluator gives)')
    parser.add_argument(
        '--name', help='variant name in the report '
        '(default: the config name)')
    add_checkpoint_arguments(parser)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def robustness(config,
               checkpoint,
               work_dir=None,
               fill='zero',
               metric=None,
               name=None,
               cfg_options=None,
               scenarios=SCENARIOS,
               allow_partial_checkpoint=False):
    """Evaluate ``checkpoint`` on every modality subset in each scenario.

    A checkpoint that does not fit the config's model is refused
    (:class:`mwam_mm.compat.CheckpointMatchHook`) unless
    ``allow_partial_checkpoint``.

    Returns:
        tuple: The metric, ``{scenario: summary}`` and the report's paths.
    """
    cfg = load_config(config, cfg_options, work_dir)
    cfg.load_from = checkpoint
    add_checkpoint_check(cfg, allow_partial_checkpoint)
    runner = build_runner(cfg)
    layout = mwam_mm.ModalityLayout.build(
        getattr(runner.model.backbone, 'layout', None))
    with explain_registry_errors():
        metric, scores = evaluate_scenarios(runner, layout, fill, metric, scenarios)
    summaries = {s: summarize(per_subset, layout) for s, per_subset in scores.items()}
    name = name or osp.splitext(osp.basename(config))[0]
    per_scenario = {s: {name: summary} for s, summary in summaries.items()}
    report = write_report(
        per_scenario,
        metric,
        cfg.work_dir,
        extra=dict(fill=fill, checkpoint=checkpoint))
    return metric, summaries, report


def main():
    args = parse_args()
    _, _, report = robustness(args.config, args.checkpoint, args.work_dir, args.fill,
                              args.metric, args.name, args.cfg_options, args.scenarios,
                              args.allow_partial_checkpoint)
    print(report['table'])
    print(f'written: {report["markdown"]}, {report["json"]}, {report["chart"]}')


if __name__ == '__main__':
    main()
