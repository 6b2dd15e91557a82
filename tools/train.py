"""Train a model from a config: mmdet's tools/train.py, plus CPU/gloo distribution.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--allow-partial-checkpoint] [--cfg-options k=v ...]
        [--launcher none|pytorch]

A resume checkpoint, or the config's load_from, whose tensors do not fit the model
is refused with a summary; --allow-partial-checkpoint allows a partial load_from
(fine-tuning from another model), never a partial resume. --resume without a path
refuses an empty or stale work_dir/last_checkpoint, naming the newest readable
checkpoint instead.

--amp: mmengine's AmpOptimWrapper (float16, dynamic loss scaling) with CUDA;
without CUDA, bfloat16 CPU autocast (mwam_mm.engine.cpu_amp.CPUAmpOptimWrapper).
"""
import argparse

import mwam_mm  # noqa: F401  (registers the components)
from mwam_mm.compat.resume import check_last_checkpoint
from mwam_mm.engine import (add_runner_arguments, build_runner, configure_amp,
                            explain_registry_errors, load_config,
                            parse_runner_arguments)
from mwam_mm.engine.runner_utils import add_checkpoint_arguments, add_checkpoint_check


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision: float16 on a GPU, bfloat16 autocast on '
        'a CPU-only machine')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale the LR by batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or without a path from the latest one '
        'in the work dir')
    add_checkpoint_arguments(parser)
    add_runner_arguments(parser)
    return parse_runner_arguments(parser)


def main():
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        configure_amp(cfg)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size '
                               f'in the config {args.config}')
        cfg.auto_scale_lr.enable = True
    if args.resume is not None and args.allow_partial_checkpoint:
        raise ValueError('--allow-partial-checkpoint cannot be used with --resume: '
                         'resuming needs the checkpoint of this very model')
    add_checkpoint_check(cfg, args.allow_partial_checkpoint)
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume') and cfg.get('load_from') is None:
        # mmengine's auto-resume reads work_dir/last_checkpoint: an empty or stale
        # one would end in an error that does not name it
        check_last_checkpoint(cfg.work_dir)
    runner = build_runner(cfg)
    with explain_registry_errors():
        runner.train()


if __name__ == '__main__':
    main()
