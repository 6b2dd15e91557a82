"""What tools/train.py, tools/test.py and the demo share around mmengine's Runner."""
import argparse
import contextlib
import os
import os.path as osp
from typing import Callable, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..datasets.synthetic import MIN_SIDE as SYNTHETIC_MIN_SIDE
from ..registry_utils import explain_unknown_type


def setup_distributed_on_cpu(cfg: Config, launcher: str) -> None:
    """Let mmengine's ``pytorch`` launcher (torchrun) work without a GPU.

    mmengine 0.10.7 calls ``torch.cuda.set_device`` while initialising a
    ``pytorch``-launched job and wraps the model with ``device_ids=[LOCAL_RANK]``,
    both of which fail on a CPU-only machine. Without CUDA this joins the process
    group itself with the gloo backend (mmengine then skips its own initialisation)
    and gives the DDP wrapper no device ids. With CUDA it does nothing.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} needs GPUs; on CPU use '
                           '--launcher pytorch with torchrun (tools/dist_train.sh)')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,  # else mmengine adds [LOCAL_RANK], a CUDA index
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')


@contextlib.contextmanager
def explain_registry_errors():
    """Re-raise mmengine's unknown-type KeyError with the nearest registered names."""
    try:
        yield
    except KeyError as e:
        message = explain_unknown_type(e)
        if message is None:
            raise
        raise KeyError(message) from None


def int_at_least(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type`` for a count option: an integer >= ``minimum``.

    Every count option of tools/ and benchmarks/ (images, seeds, jobs, epochs,
    iterations, repeats, batch sizes, samples...) uses it, so that a value below
    the minimum stops the script with argparse's usage error (``argument
    --num-train: must be at least 1, got -5``) instead of running with an empty
    dataset or a silent default.

    Args:
        minimum (int): The smallest value allowed.
        maximum (int, optional): The largest value allowed (None: no bound).

    Returns:
        Callable[[str], int]: The converter, for ``add_argument(type=...)``.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'must be an integer, got {text!r}') from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = (f'from {minimum} to {maximum}'
                     if maximum is not None else f'at least {minimum}')
            raise argparse.ArgumentTypeError(f'must be {bound}, got {value}')
        return value

    # argparse names the type in some messages (e.g. of a bad default)
    parse.__name__ = f'int_at_least({minimum})'
    return parse


#: the usual minimums: a count of things (>= 1) and a seed or an offset (>= 0)
positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
#: a side of a synthetic image (make_synthetic_rgbt refuses smaller ones)
synthetic_side = int_at_least(SYNTHETIC_MIN_SIDE)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """The options tools/train.py and tools/test.py share with mmdet's tools."""
    parser.add_argument('--work-dir', help='the dir to save logs, models, metrics')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--local_rank', '--local-rank', type=non_negative_int, default=0)


def parse_runner_arguments(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Load a config as tools/train.py does: options, work_dir, launcher."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} not found')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = '0'
    setup_distributed_on_cpu(cfg, launcher)
    return cfg


def add_checkpoint_check(cfg: Config, allow_partial: bool = False) -> Config:
    """Make the runner refuse a ``load_from``/resume checkpoint that does not fit.

    Adds :class:`mwam_mm.compat.CheckpointMatchHook` to ``cfg.custom_hooks`` (or
    sets ``allow_partial`` on the one the config has). mmengine alone loads such a
    checkpoint non-strictly and only logs what it left out.

    Args:
        cfg (Config): The config, changed in place.
        allow_partial (bool): A partial ``load_from`` is meant: load what fits and
            warn. Resuming always needs the full model.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    for hook in hooks:
        if isinstance(hook,
                      dict) and hook.get('type') in ('CheckpointMatchHook',
                                                     'mmengine.CheckpointMatchHook'):
            hook['allow_partial'] = bool(allow_partial) or bool(
                hook.get('allow_partial', False))
            break
    else:
        hooks.append(
            dict(type='CheckpointMatchHook', allow_partial=bool(allow_partial)))
    cfg.custom_hooks = hooks
    return cfg


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """The option that allows a partial checkpoint load (tools/*.py)."""
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='load a checkpoint whose tensors do not all fit the model (missing, '
        'unexpected or of another shape), e.g. to fine-tune from another model; '
        'without it such a checkpoint is refused. Never for --resume')


def build_runner(cfg: Config) -> Runner:
    with explain_registry_errors():
        if 'runner_type' in cfg:
            return RUNNERS.build(cfg)
        return Runner.from_cfg(cfg)
