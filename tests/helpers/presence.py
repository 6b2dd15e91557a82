"""Data samples marked with missing modalities, for tests of the explicit path."""
import torch

NAMES = ('rgb', 'thermal')


def with_missing(data_samples, presence: torch.Tensor, names=NAMES) -> list:
    """Copies of ``data_samples`` whose ``missing_modalities`` say what the
    ``(B, M)`` ``presence`` mask says (False = missing)."""
    return [
        sample.new(
            metainfo=dict(
                sample.metainfo,
                missing_modalities=[n for n, present in zip(names, row)
                                    if not present]))
        for sample, row in zip(data_samples, presence.tolist())
    ]
