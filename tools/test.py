"""Test a checkpoint: mmdet's tools/test.py, plus CPU/gloo distribution.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
        [--show-dir DIR] [--allow-partial-checkpoint] [--cfg-options k=v ...]
        [--launcher none|pytorch]

A checkpoint whose tensors do not fit the config's model (missing, unexpected or
of another shape: the checkpoint of another config) is refused with a summary,
unless --allow-partial-checkpoint is given.

--show-dir DIR writes one image per test sample into DIR: RGB and thermal side by
side, ground truth left, prediction right (mwam_mm.visualization).
"""
import argparse

import mwam_mm  # noqa: F401  (registers the components)
from mwam_mm.engine import (add_runner_arguments, build_runner, explain_registry_errors,
                            load_config, parse_runner_arguments)
from mwam_mm.engine.runner_utils import add_checkpoint_arguments, add_checkpoint_check
from mwam_mm.visualization.rgbt_visualizer import enable_test_visualization


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump predictions to this pickle file')
    parser.add_argument(
        '--show-dir',
        help='write each test sample drawn (RGB | thermal, ground truth left, '
        'prediction right) into this folder')
    add_checkpoint_arguments(parser)
    add_runner_arguments(parser)
    return parse_runner_arguments(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    add_checkpoint_check(cfg, args.allow_partial_checkpoint)
    if args.show_dir:
        enable_test_visualization(cfg, args.show_dir)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    runner = build_runner(cfg)
    with explain_registry_errors():
        runner.test()


if __name__ == '__main__':
    main()
