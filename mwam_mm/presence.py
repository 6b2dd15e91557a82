"""What each sample says about its modalities, carried in its metainfo.

Two per-sample facts ride on the data samples, as mmdet's preprocessor writes
``batch_input_shape`` into their metainfo:

- ``missing_modalities`` (:data:`MISSING_KEY`): a list of modality names known to
  be missing (a dead camera, or dropped on purpose by feature-level modality
  dropout in the RGB-T data preprocessors). The model turns a batch's lists into a
  ``(B, M)`` boolean *presence mask* (True = present, modalities in layout order,
  :func:`presence_from_data_samples`) and passes it to the backbone:
  ``backbone(inputs, presence)``, as mmdet3d's ``extract_img_feat(img,
  input_metas)``.
- ``modality_weights`` (:data:`WEIGHTS_KEY`): ``{modality: weight}``, the factor on
  the sample's stream features before fusion in training (BTW;
  :class:`mwam_mm.engine.BTWHook` writes it into the batch before each training
  iteration). The model passes the ``(B, M)`` tensor
  (:func:`weights_from_data_samples`) to the backbone in training only.

Our model classes (``RGBTSingleStageDetector``, ``RGBTTwoStageDetector``,
``RGBTEncoderDecoder``) read both and pass them explicitly; a stock mmdet/mmseg
model calls ``backbone(inputs)`` and gets every modality treated as present.
Segmentors see metainfo dicts (``batch_img_metas``) where detectors see data
samples: the functions here take either.
"""
from typing import Optional, Sequence

import torch

from .modality import ModalityLayout

MISSING_KEY = 'missing_modalities'
WEIGHTS_KEY = 'modality_weights'


def _metainfo(sample) -> dict:
    """The metainfo of a data sample, or the dict itself (mmseg's img metas)."""
    if isinstance(sample, dict):
        return sample
    return getattr(sample, 'metainfo', None) or {}


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
    """The ``(B, M)`` presence mask of a batch from its samples'
    ``missing_modalities`` (``None`` when every sample has every modality).

    Args:
        data_samples (list): Data samples, or metainfo dicts (``batch_img_metas``).
        layout (ModalityLayout): The modality layout (order of the columns).
        device: Device of the mask.
    """
    if data_samples is None or len(data_samples) == 0:
        return None
    missing = [_metainfo(sample).get(MISSING_KEY) for sample in data_samples]
    if not any(missing):
        return None
    return presence_mask(missing, layout, device)


def weights_from_data_samples(data_samples,
                              layout: ModalityLayout,
                              device=None) -> Optional[torch.Tensor]:
    """The ``(B, M)`` per-sample modality weights of a batch from its samples'
    ``modality_weights`` (``None`` when no sample has any).

    A sample without the key has weight 1 for every modality; a sample with it
    names every modality of the layout, each with a finite number.

    Args:
        data_samples (list): Data samples, or metainfo dicts.
        layout (ModalityLayout): The modality layout (order of the columns).
        device: Device of the tensor.
    """
    if data_samples is None or len(data_samples) == 0:
        return None
    given = [_metainfo(sample).get(WEIGHTS_KEY) for sample in data_samples]
    if all(w is None for w in given):
        return None
    rows = []
    for i, weights in enumerate(given):
        if weights is None:
            rows.append([1.0] * len(layout))
            continue
        if not isinstance(weights, dict) or sorted(weights) != sorted(layout.names):
            raise ValueError(
                f'{WEIGHTS_KEY} of sample {i} must be a dict with one weight per '
                f'modality of the layout {layout.names}, got {weights!r}')
        rows.append([float(weights[name]) for name in layout.names])
    return torch.tensor(rows, dtype=torch.float32, device=device)


def set_sample_weights(data_samples, weights: torch.Tensor,
                       layout: ModalityLayout) -> None:
    """Write each sample's row of ``weights`` (``(B, M)``) into its metainfo as
    ``modality_weights``; the inverse of :func:`weights_from_data_samples`."""
    if weights.shape != (len(data_samples), len(layout)):
        raise ValueError(f'{WEIGHTS_KEY}: weights of shape {tuple(weights.shape)} for '
                         f'{len(data_samples)} samples and modalities {layout.names}')
    for sample, row in zip(data_samples, weights.tolist()):
        sample.set_metainfo({WEIGHTS_KEY: dict(zip(layout.names, row))})


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
