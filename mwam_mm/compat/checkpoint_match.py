"""Refusing a checkpoint whose weights do not fit the model.

mmengine 0.10.7's runner loads ``load_from`` and resume checkpoints with
``strict=False``: tensors the model lacks, tensors the file lacks and tensors of
another shape are only logged, so testing the checkpoint of another config scores
a half-initialised model and exits 0, and resuming with it fails later, deep inside
the optimizer. :class:`CheckpointMatchHook` (added by ``tools/train.py``,
``tools/test.py`` and ``tools/robustness.py``) compares the checkpoint with the
model right after the runner reads it, before anything is loaded, and refuses it
with one message: the file, and the missing, unexpected and mis-shaped tensors
(counts and the first few names).

A partial load that is meant (fine-tuning from a model with other classes or
another fusion) is allowed explicitly (``--allow-partial-checkpoint``,
``allow_partial=True``); it is then summarised in a warning. Resuming always needs
the full model. Backbone streams initialised from unimodal checkpoints by their
``init_cfg`` (``dict(type='Pretrained', ...)``) are not concerned: mmengine loads
those through ``load_checkpoint``, not through the runner.
"""
import logging
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import find_latest_checkpoint

# mmengine's default revise_keys: DDP-saved files prefix every key with 'module.'
REVISE_KEYS = ((r'^module\.', ''), )
ALLOW_OPTION = '--allow-partial-checkpoint'


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's tensors do not fit the model it is loaded into."""


def checkpoint_state_dict(
        checkpoint: dict,
        revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS) -> Dict[str, object]:
    """The weights of a loaded checkpoint, keyed as mmengine will load them."""
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f'the checkpoint holds {type(state).__name__}, not a state dict of '
            'tensor names and tensors')
    out = OrderedDict(state)
    for pattern, replacement in revise_keys:
        out = OrderedDict((re.sub(pattern, replacement, k), v) for k, v in out.items())
    return out


def compare_state_dicts(model_state: Dict[str, object],
                        checkpoint_state: Dict[str, object]) -> dict:
    """Missing, unexpected and mis-shaped keys of ``checkpoint_state``.

    Returns:
        dict: ``missing`` (model keys the checkpoint lacks; BatchNorm's
        ``num_batches_tracked`` is not counted, as mmengine does not),
        ``unexpected`` (checkpoint keys the model lacks), ``mismatched``
        (``(key, checkpoint shape, model shape)``) and ``matched`` (the number of
        tensors that would load).
    """
    missing = [
        k for k in model_state
        if k not in checkpoint_state and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in checkpoint_state if k not in model_state]
    mismatched = []
    matched = 0
    for key, value in checkpoint_state.items():
        if key not in model_state:
            continue
        ours = model_state[key]
        shape, expected = getattr(value, 'shape', None), getattr(ours, 'shape', None)
        if shape is not None and expected is not None and \
                tuple(shape) != tuple(expected):
            mismatched.append((key, tuple(shape), tuple(expected)))
        else:
            matched += 1
    return dict(
        missing=missing, unexpected=unexpected, mismatched=mismatched, matched=matched)


def _names(keys: List[str], max_names: int) -> str:
    shown = ', '.join(keys[:max_names])
    more = len(keys) - max_names
    return shown + (f', ... ({more} more)' if more > 0 else '')


def describe_mismatch(source: str,
                      model_name: str,
                      num_model: int,
                      num_checkpoint: int,
                      result: dict,
                      max_names: int = 5) -> str:
    """The summary: file, counts and the first ``max_names`` names of each kind."""
    lines = [
        f'checkpoint {source} does not fit the model {model_name} '
        f'({num_model} tensors in the model, {num_checkpoint} in the file):'
    ]
    if result['missing']:
        lines.append(f'  - missing: {len(result["missing"])} of the model\'s tensors '
                     f'are not in the file: {_names(result["missing"], max_names)}')
    if result['unexpected']:
        lines.append(f'  - unexpected: {len(result["unexpected"])} tensors in the '
                     'file are not in the model: '
                     f'{_names(result["unexpected"], max_names)}')
    if result['mismatched']:
        shown = '; '.join(f'{k}: {tuple(c)} in the file, {tuple(m)} in the model'
                          for k, c, m in result['mismatched'][:max_names])
        more = len(result['mismatched']) - max_names
        lines.append(f'  - mis-shaped: {len(result["mismatched"])} tensors have '
                     f'another shape: {shown}' +
                     (f'; ... ({more} more)' if more > 0 else ''))
    return '\n'.join(lines)


def check_checkpoint_fits(model,
                          checkpoint: dict,
                          source: str,
                          allow_partial: bool = False,
                          resuming: bool = False,
                          max_names: int = 5) -> dict:
    """Refuse ``checkpoint`` unless its weights fit ``model`` exactly.

    Args:
        model (nn.Module): The model (a wrapper is unwrapped).
        checkpoint (dict): The loaded checkpoint (with ``state_dict``, or a state
            dict itself).
        source (str): The file, for the message.
        allow_partial (bool): Load what fits and warn, for partial loads that are
            meant. A file of which nothing fits is refused all the same.
        resuming (bool): The checkpoint resumes training: it must fit exactly,
            whatever ``allow_partial`` says.
        max_names (int): Names listed per kind of mismatch.

    Returns:
        dict: The comparison (:func:`compare_state_dicts`).

    Raises:
        CheckpointMismatchError: The checkpoint does not fit (as above).
    """
    if is_model_wrapper(model):
        model = model.module
    model_state = model.state_dict()
    state = checkpoint_state_dict(checkpoint)
    result = compare_state_dicts(model_state, state)
    if not (result['missing'] or result['unexpected'] or result['mismatched']):
        return result
    summary = describe_mismatch(source,
                                type(model).__name__, len(model_state), len(state),
                                result, max_names)
    if resuming:
        raise CheckpointMismatchError(
            f'{summary}\nResuming needs the checkpoint of this very model (its '
            'optimizer state and schedule belong to the weights); it was probably '
            'saved from another config, or the config changed since.')
    if result['matched'] == 0:
        raise CheckpointMismatchError(
            f'{summary}\nNone of its tensors fits the model: it belongs to another '
            f'model (a partial load, {ALLOW_OPTION}, needs at least one tensor that '
            'fits). A single-modality backbone checkpoint goes in a stream\'s '
            "init_cfg instead: streams=dict(rgb=dict(init_cfg=dict("
            "type='Pretrained', checkpoint=...))).")
    if not allow_partial:
        raise CheckpointMismatchError(
            f'{summary}\nIt was probably saved from another config. Use the '
            f'checkpoint of this config; if a partial load is meant (fine-tuning '
            f'from another model), pass {ALLOW_OPTION} (or add '
            "dict(type='CheckpointMatchHook', allow_partial=True) to custom_hooks).")
    print_log(
        f'{summary}\nLoading the {result["matched"]} tensors that fit '
        f'({ALLOW_OPTION}); the others keep their initialisation.',
        logger='current',
        level=logging.WARNING)
    return result


@HOOKS.register_module()
class CheckpointMatchHook(Hook):
    """Refuse a ``load_from`` or resume checkpoint that does not fit the model.

    Runs after the runner reads a checkpoint and before it loads it into the model
    (``after_load_checkpoint``), so nothing of a refused file is loaded and a
    refused resume never reaches the optimizer. See
    :func:`check_checkpoint_fits`.

    Args:
        allow_partial (bool): Allow a partial ``load_from`` (summarised in a
            warning). Resuming always needs the full model. Defaults to False.
        max_names (int): Names listed per kind of mismatch. Defaults to 5.
    """

    priority = 'VERY_HIGH'  # before any hook that reads the checkpoint's content

    def __init__(self, allow_partial: bool = False, max_names: int = 5):
        self.allow_partial = bool(allow_partial)
        self.max_names = max_names

    @staticmethod
    def _source(runner) -> str:
        """The file the runner is loading, found as mmengine finds it."""
        load_from: Optional[str] = getattr(runner, '_load_from', None)
        if load_from:
            return str(load_from)
        if getattr(runner, '_resume', False):
            latest = find_latest_checkpoint(runner.work_dir)
            if latest:
                return latest
        return 'the loaded checkpoint'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        check_checkpoint_fits(
            runner.model,
            checkpoint,
            self._source(runner),
            allow_partial=self.allow_partial,
            resuming=bool(getattr(runner, '_resume', False)),
            max_names=self.max_names)


__all__ = [
    'CheckpointMatchHook', 'CheckpointMismatchError', 'check_checkpoint_fits',
    'compare_state_dicts', 'checkpoint_state_dict', 'describe_mismatch'
]
