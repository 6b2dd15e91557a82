"""Missing-modality robustness of a trained model.

Runs the test loop once per non-empty subset of modalities (RGB-T: both, RGB-only,
thermal-only), blanking the others, and writes robustness.md, robustness.json and
robustness.png (score per subset, mean, collapse rate) into the work dir.

    python tools/robustness.py CONFIG CHECKPOINT [--work-dir DIR]
        [--fill zero|mean] [--metric KEY] [--name VARIANT] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

import mwam_mm  # noqa: F401
from mwam_mm.engine import build_runner, explain_registry_errors, load_config
from mwam_mm.evaluation import evaluate_subsets, summarize, write_report


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='where the report goes')
    parser.add_argument('--fill', choices=['zero', 'mean'], default='zero',
                        help='what a missing modality becomes (default: zero)')
    parser.add_argument('--metric', help='metric key (default: mIoU, COCO bbox mAP '
                        'or VOC mAP, whichever the evaluator gives)')
    parser.add_argument('--name', help='variant name in the report '
                        '(default: the config name)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def robustness(config, checkpoint, work_dir=None, fill='zero', metric=None,
               name=None, cfg_options=None):
    """Evaluate ``checkpoint`` on every modality subset; returns the summary."""
    cfg = load_config(config, cfg_options, work_dir)
    cfg.load_from = checkpoint
    runner = build_runner(cfg)
    layout = getattr(runner.model.backbone, 'layout', None)
    with explain_registry_errors():
        metric, scores = evaluate_subsets(runner, layout, fill, metric)
    summary = summarize(scores, layout if layout is not None else
                        mwam_mm.ModalityLayout.build(None))
    name = name or osp.splitext(osp.basename(config))[0]
    report = write_report({name: summary}, metric, cfg.work_dir,
                          extra=dict(fill=fill, checkpoint=checkpoint))
    return metric, summary, report


def main():
    args = parse_args()
    _, _, report = robustness(args.config, args.checkpoint, args.work_dir,
                              args.fill, args.metric, args.name, args.cfg_options)
    print(report['table'])
    print(f'written: {report["markdown"]}, {report["json"]}, {report["chart"]}')


if __name__ == '__main__':
    main()
