"""Loading mmengine checkpoints under torch >= 2.6 without turning off its safety.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7 calls
``torch.load`` without the argument, so its own checkpoints (which hold the message
hub's ``HistoryBuffer`` objects and numpy values) fail to load, resume or serve as
``load_from``. Passing ``weights_only=False`` would unpickle arbitrary code from any
file. Instead this module replaces mmengine's local-file checkpoint loader, through
mmengine's own extension point (``CheckpointLoader.register_scheme``), with one that
keeps ``weights_only=True`` and allowlists exactly the types mmengine writes:

- ``mmengine.logging.HistoryBuffer``;
- numpy arrays, scalars and dtypes (``_reconstruct``, ``scalar``, ``ndarray``,
  ``dtype`` and the concrete dtype classes);
- ``getattr``, but only as ``getattr(HistoryBuffer, <statistics method>)``, the one
  use in mmengine's checkpoints (a HistoryBuffer pickles its statistics methods).

Anything else in a file is refused with an error that names the file and the type.
The allowlist is active only while a checkpoint is being loaded through mmengine.
Loading an untrusted checkpoint is therefore as safe as ``torch.load(...,
weights_only=True)``; a trusted checkpoint holding other types needs those types
added with :func:`register_checkpoint_globals`.
"""
import os.path as osp
import pickle
import zipfile
from typing import Callable, List

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to what a pickled HistoryBuffer needs."""
    # the defaults are registered lazily, by the first HistoryBuffer built
    allowed = {'min', 'max', 'current', 'mean'} | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}) while loading a checkpoint: only '
        'HistoryBuffer statistics methods may be looked up')


def _numpy_globals() -> List:
    core = getattr(np, '_core', None) or np.core
    found = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    found += [
        type(np.dtype(t)) for t in ('bool', 'uint8', 'int8', 'int16', 'int32', 'int64',
                                    'float16', 'float32', 'float64')
    ]
    return found


_CHECKPOINT_GLOBALS: List = [HistoryBuffer] + _numpy_globals() + [
    (_history_buffer_getattr, 'builtins.getattr'),
    (_history_buffer_getattr, '__builtin__.getattr'),
]


def register_checkpoint_globals(globals_: List[Callable]) -> None:
    """Allow more types in checkpoints loaded through mmengine (trusted files only).

    Args:
        globals_ (list): Classes or functions, or ``(callable, 'module.name')``
            pairs, as ``torch.serialization.add_safe_globals`` takes them.
    """
    _CHECKPOINT_GLOBALS.extend(globals_)


def checkpoint_globals() -> List:
    return list(_CHECKPOINT_GLOBALS)


#: first bytes of what ``torch.save`` writes: a zip archive (torch >= 1.6) or a
#: pickle (the legacy format)
TORCH_FILE_MAGIC = (b'PK\x03\x04', b'\x80')


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's local loader with ``weights_only=True`` and mmengine's types.

    Errors name the file and say what is wrong with it: missing, empty (0 bytes),
    truncated or not a PyTorch checkpoint (torch says only "failed finding central
    directory" or "Ran out of input"), or holding an object that is not allowed.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    size = osp.getsize(filename)
    if size == 0:
        raise RuntimeError(
            f'cannot load checkpoint {filename}: the file is empty (0 bytes); it was '
            'probably cut off while being saved or copied (full disk, killed job). '
            'Use another checkpoint, e.g. the one saved before it.')
    with open(filename, 'rb') as f:
        head = f.read(4)
    if not head.startswith(TORCH_FILE_MAGIC):
        raise RuntimeError(
            f'cannot load checkpoint {filename} ({size} bytes): the file is '
            f'truncated or is not a PyTorch checkpoint (it starts with {head!r}, '
            'not with a zip archive or a pickle). Re-copy it, or use another '
            'checkpoint.')
    try:
        with torch.serialization.safe_globals(_CHECKPOINT_GLOBALS):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Unsupported operand' in str(e):  # damaged pickle bytes, not a type
            raise RuntimeError(
                f'cannot load checkpoint {filename} ({size} bytes): the file is '
                'truncated or is not a PyTorch checkpoint (its pickle data is '
                'damaged). Re-copy it, or use another checkpoint.') from None
        raise pickle.UnpicklingError(
            f'refused to load checkpoint {filename}: it holds an object that is not '
            f'a tensor or one of the types mmengine saves. {e}\nmwam_mm loads '
            'checkpoints with weights_only=True (untrusted files cannot run code); '
            'if you trust this file, allow the type with '
            'mwam_mm.compat.register_checkpoint_globals([...]).') from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError,
            zipfile.BadZipFile) as e:
        first_line = str(e).splitlines()[0] if str(e) else ''
        if isinstance(
                e, RuntimeError) and not any(p in str(e) for p in _CORRUPTION_MESSAGES):
            # not about the file's bytes (e.g. a CUDA map_location on a CPU machine)
            raise RuntimeError(f'cannot load checkpoint {filename}: {e}') from None
        raise RuntimeError(
            f'cannot load checkpoint {filename} ({size} bytes): the file is '
            f'truncated or is not a PyTorch checkpoint (torch: {type(e).__name__}: '
            f'{first_line}). Re-copy it, or use another checkpoint.') from None


# what torch says about a cut-off or foreign file (zip reader, legacy reader)
_CORRUPTION_MESSAGES = ('PytorchStreamReader', 'zip archive', 'unexpected EOF',
                        'corrupted', 'magic number', 'central directory')


def install_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with :func:`load_local_checkpoint`."""
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)


def mmengine_local_loader() -> Callable:
    """The loader mmengine currently uses for local paths (for tests)."""
    return CheckpointLoader._get_checkpoint_loader('/a/local/path.pth')


__all__ = [
    'install_checkpoint_loader', 'load_local_checkpoint', 'register_checkpoint_globals',
    'checkpoint_globals', 'mmengine_local_loader'
]
