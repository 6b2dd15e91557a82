"""Mixed precision training on CPU: bfloat16 autocast, for ``tools/train.py --amp``.

mmengine 0.10.7's ``AmpOptimWrapper`` asserts in ``__init__`` that a CUDA, NPU,
MLU or MUSA device is present, so ``--amp`` on a CPU-only machine ended in a bare
``AssertionError``, although mmengine's own ``autocast`` supports CPU autocast
with bfloat16. :class:`CPUAmpOptimWrapper` is the compatibility shim: mmengine's
plain ``OptimWrapper`` whose forward pass and loss (``optim_context``) run under
CPU bfloat16 autocast. It needs no loss scaling: bfloat16 has float32's exponent
range, so gradients do not underflow as they can in float16, and the parameters
and their gradients stay float32.

:func:`configure_amp` is what ``--amp`` does to a config: mmengine's
``AmpOptimWrapper`` (float16, dynamic loss scaling) where mmengine supports it,
:class:`CPUAmpOptimWrapper` (bfloat16) on a CPU whose torch runs bfloat16 autocast,
and a clear error, before anything is built, otherwise.
"""
import functools
import logging
from contextlib import contextmanager
from typing import Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast

# AmpOptimWrapper's keys that mean nothing without its GradScaler
_SCALER_KEYS = ('loss_scale', 'use_fsdp')


@functools.lru_cache(maxsize=None)
def cpu_bf16_autocast_supported() -> bool:
    """Whether this torch runs a convolution under CPU bfloat16 autocast (probed
    once per process: ``configure_amp`` and the wrapper both ask)."""
    try:
        with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
            out = nn.functional.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 1, 1))
    except (RuntimeError, TypeError, ValueError):
        return False
    return out.dtype == torch.bfloat16


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that runs the forward pass and loss under CPU bfloat16
    autocast.

    Use it as ``optim_wrapper=dict(type='CPUAmpOptimWrapper', optimizer=...)``
    (``tools/train.py --amp`` on a machine without CUDA sets it). Everything else
    is mmengine's ``OptimWrapper``: gradient accumulation, clipping, no loss
    scaling (not needed with bfloat16).

    Args:
        dtype (str | torch.dtype): The autocast dtype; only ``'bfloat16'`` (what
            CPU autocast supports).
        **kwargs: Keyword arguments of mmengine's ``OptimWrapper``.

    Raises:
        ValueError: ``dtype`` is not bfloat16.
        RuntimeError: This torch cannot run CPU bfloat16 autocast.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype != torch.bfloat16:
            raise ValueError('CPUAmpOptimWrapper: CPU autocast supports only '
                             f'bfloat16, got dtype={dtype!r}')
        if not cpu_bf16_autocast_supported():
            raise RuntimeError(
                'CPUAmpOptimWrapper: this torch build cannot run CPU bfloat16 '
                f'autocast (torch {torch.__version__}); train without --amp')
        super().__init__(**kwargs)
        self.cast_dtype = dtype

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer's state; a GradScaler's state is dropped.

        A checkpoint of mmengine's ``AmpOptimWrapper`` (a float16 run on a GPU)
        holds ``loss_scaler``, which plain ``OptimWrapper`` would pass on to the
        optimizer; bfloat16 training has no scaler to restore it into.
        """
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: nn.Module):
        """``OptimWrapper``'s context (no gradient sync while accumulating) plus
        CPU bfloat16 autocast."""
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield


def configure_amp(cfg: Config) -> str:
    """Set ``cfg.optim_wrapper`` for mixed precision training, as ``--amp`` does.

    - CUDA (or NPU, MLU, MUSA): mmengine's ``AmpOptimWrapper`` with dynamic loss
      scaling; it autocasts to float16 unless the config gives a ``dtype``.
    - CPU only: :class:`CPUAmpOptimWrapper`, bfloat16 autocast (a config
      ``dtype`` other than bfloat16, and AmpOptimWrapper's loss scaling keys, are
      dropped with a warning).
    - CPU without bfloat16 autocast in this torch: a RuntimeError, before the
      runner is built.

    The precision chosen is logged.

    Args:
        cfg (Config): The config, changed in place.

    Returns:
        str: The autocast dtype, ``'float16'``, ``'bfloat16'`` or, on CUDA, the
        config's ``dtype``.
    """
    optim_wrapper = cfg.optim_wrapper
    if is_cuda_available() or is_npu_available() or is_mlu_available() or \
            is_musa_available():
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.loss_scale = 'dynamic'
        dtype = str(optim_wrapper.get('dtype') or 'float16').replace('torch.', '')
        print_log(
            f'--amp: mixed precision training with {dtype} autocast '
            '(AmpOptimWrapper, dynamic loss scaling)',
            logger='current')
        return dtype
    if not cpu_bf16_autocast_supported():
        raise RuntimeError(
            '--amp: no CUDA device, and this torch build cannot run CPU bfloat16 '
            f'autocast (torch {torch.__version__}); train without --amp')
    dropped = [k for k in _SCALER_KEYS if optim_wrapper.pop(k, None) is not None]
    dtype = optim_wrapper.pop('dtype', None)
    if dtype is not None and str(dtype).replace('torch.', '') != 'bfloat16':
        dropped.append(f'dtype={dtype}')
    if dropped:
        print_log(
            f'--amp on CPU: ignoring optim_wrapper {", ".join(dropped)} '
            '(CPU autocast is bfloat16 and needs no loss scaling)',
            logger='current',
            level=logging.WARNING)
    optim_wrapper.type = 'CPUAmpOptimWrapper'
    optim_wrapper.dtype = 'bfloat16'
    print_log(
        '--amp: no CUDA device, mixed precision training with bfloat16 CPU '
        'autocast (CPUAmpOptimWrapper, no loss scaling)',
        logger='current')
    return 'bfloat16'


__all__ = ['CPUAmpOptimWrapper', 'configure_amp', 'cpu_bf16_autocast_supported']
