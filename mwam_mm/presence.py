"""Which modalities each sample of a batch has: the presence mask.

A sample can say that some of its modalities are missing (a camera known to be dead,
or dropped on purpose by feature-level modality dropout) with the meta key
``missing_modalities`` (a list of modality names). The data preprocessor turns the
batch's lists into a ``(B, M)`` boolean *presence mask* (True = present, modalities in
layout order) and publishes it for the forward pass that follows, where
:class:`~mwam_mm.models.DualStreamBackbone` reads it.

Why a published mask rather than an argument: stock detectors and segmentors call
``backbone(inputs)`` with the image tensor alone, and the data samples never reach
the backbone. The preprocessor is the one component that sees both, and it runs
right before every forward of a train, val or test step; it sets the mask for every
batch (``None`` when every modality of every sample is present) together with a
weak reference to the batch's input tensor, and the mask lapses when that tensor is
freed, so a mask never outlives its batch. The mask is per thread, like autocast's
state.
"""
import threading
import weakref
from contextlib import contextmanager
from typing import Optional, Sequence

import torch

from .modality import ModalityLayout

MISSING_KEY = 'missing_modalities'

_state = threading.local()


def set_batch_presence(presence: Optional[torch.Tensor],
                       inputs: Optional[torch.Tensor] = None) -> None:
    """Publish the presence mask of the batch about to be forwarded.

    Args:
        presence (Tensor, optional): ``(B, M)`` bool, True where present.
        inputs (Tensor, optional): The batch's input tensor: the mask lapses when
            it is freed. Without it the mask holds until replaced.
    """
    _state.presence = presence
    _state.inputs = None if inputs is None else weakref.ref(inputs)


def current_batch_presence() -> Optional[torch.Tensor]:
    """The presence mask published for the current batch, or ``None``."""
    presence = getattr(_state, 'presence', None)
    inputs = getattr(_state, 'inputs', None)
    if presence is not None and inputs is not None and inputs() is None:
        return None  # its batch is gone
    return presence


@contextmanager
def batch_presence(presence: Optional[torch.Tensor]):
    """Publish ``presence`` for the duration of a ``with`` block."""
    previous = (getattr(_state, 'presence', None), getattr(_state, 'inputs', None))
    set_batch_presence(presence)
    try:
        yield
    finally:
        _state.presence, _state.inputs = previous


def check_missing(names: Sequence[str],
                  layout: ModalityLayout,
                  where: str = 'a sample') -> list:
    """Validate a list of missing modality names; returns it as a list."""
    if isinstance(names, str):
        names = [names]
    names = list(names)
    unknown = [n for n in names if n not in layout.names]
    if unknown:
        raise ValueError(f'{MISSING_KEY} of {where} names {unknown}, which are not '
                         f'modalities of the layout {layout.names}')
    if len(set(names)) == len(layout):
        raise ValueError(f'{MISSING_KEY} of {where} marks every modality missing '
                         f'({names}); a sample needs at least one modality')
    return names


def add_missing(existing: Optional[Sequence[str]],
                names: Sequence[str],
                layout: ModalityLayout,
                where: str = 'a sample') -> list:
    """``existing`` missing names plus ``names`` (no repeats), checked."""
    missing = list(existing or [])
    missing += [n for n in names if n not in missing]
    return check_missing(missing, layout, where=where)


def presence_mask(missing_per_sample: Sequence[Optional[Sequence[str]]],
                  layout: ModalityLayout,
                  device=None) -> Optional[torch.Tensor]:
    """``(B, M)`` presence mask from each sample's missing names (``None`` if all
    present)."""
    rows = []
    for i, missing in enumerate(missing_per_sample):
        missing = check_missing(missing or [], layout, where=f'sample {i}')
        rows.append([m not in missing for m in layout.names])
    mask = torch.tensor(rows, dtype=torch.bool, device=device).view(-1, len(layout))
    return None if bool(mask.all()) else mask


def presence_from_data_samples(data_samples,
                               layout: ModalityLayout,
                               device=None) -> Optional[torch.Tensor]:
    """The presence mask of a batch from its data samples' ``missing_modalities``."""
    if not data_samples:
        return None
    missing = []
    for sample in data_samples:
        metainfo = getattr(sample, 'metainfo', None)
        missing.append((metainfo or {}).get(MISSING_KEY))
    if not any(missing):
        return None
    return presence_mask(missing, layout, device)


def check_pipeline_carries_missing(pipeline, source: str) -> None:
    """A pipeline that marks samples missing must pack the mark into the metainfo.

    mmdet's and mmseg's Pack transforms copy only their ``meta_keys``; without
    ``'missing_modalities'`` among them the model would never be told, silently.

    Args:
        pipeline: The dataset's built pipeline (``Compose``).
        source (str): Name of the dataset, for the message.
    """
    transforms = list(getattr(pipeline, 'transforms', []))
    marking = [t for t in transforms if getattr(t, 'marks_missing', False)]
    if not marking:
        return
    packs = [t for t in transforms if type(t).__name__.startswith('Pack')]
    for pack in packs:
        keys = getattr(pack, 'meta_keys', None)
        if keys is not None and MISSING_KEY not in keys:
            raise ValueError(
                f'{source}: the pipeline step {marking[0]!r} marks modalities '
                f'missing, but {type(pack).__name__} does not carry them: add '
                f"'{MISSING_KEY}' to its meta_keys (now {tuple(keys)})")
