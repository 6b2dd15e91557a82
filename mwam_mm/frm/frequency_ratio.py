"""Frequency Ratio Metric (FRM) of a modality's input batch.

FRM compares, patch by patch, the low-frequency and the high-frequency corners of an
orthonormal 2-D DCT-II. Only ``2 * q * q`` of the ``p * p`` coefficients of a patch are
used, so only those are computed: with ``D`` the ``p x p`` DCT-II matrix, a patch's
coefficient block ``C[R, S]`` for row set ``R`` and column set ``S`` is
``D[R] @ X @ D[S].T``. Taking ``R = S = (p-1, ..., p-q)`` for the high band gives the
bottom-right block already flipped in both axes, so ``high[a, b] = C[p-1-a, p-1-b]``
lines up with ``low[a, b] = C[a, b]`` as the method pairs them.

**The patch grid.** ``grid_offset=(oy, ox)`` starts the grid ``oy`` rows and ``ox``
columns into the image (``0 <= o < p``; the paper's grid is ``(0, 0)``). It matters
for JPEG images fed at their stored size: JPEG quantises exactly these 8x8 DCT blocks,
so with the grid on the blocks the high band is mostly quantisation residue (see
``benchmarks/frm_grid_offset.py``). Patches that do not fit are cropped: the first
``oy`` rows and ``ox`` columns and then the last rows and columns that do not fill a
patch are ignored (the rule of a strided ``unfold`` after the offset). Inputs with
less than one patch after the offset are an error.

Modes:

- ``'paper'``: ``sum |low / (high + sigma)|`` over batch, channels, patches and the
  ``q x q`` block, exactly the formula of the paper, computed in float64. A
  denominator that is exactly zero (``high == -sigma``) is replaced by ``sigma`` so
  the result is always finite for finite input; otherwise the value is the formula's.
  It is ill-conditioned by construction: a near-zero high coefficient of either sign
  dominates the sum, so values span orders of magnitude between batches.
- ``'robust'``: ``E_low / (E_high + eps * E_ref)``, band energies summed over the
  batch (``E = sum c**2``) with ``E_ref = sum(x**2) * q*q / (p*p)``, the energy a band
  of ``q*q`` coefficients would hold for a spectrally flat input (Parseval). The ratio
  is scale-invariant like the paper's, bounded by ``p*p / (q*q * eps)``, and zero for an
  all-zero input. ``eps`` (``sigma`` argument, default 1e-2 in this mode) sets how much
  a batch with no high-frequency content at all is allowed to dominate.
"""
import math
from functools import lru_cache
from typing import Tuple, Union

import torch
import torch.nn as nn

FRM_MODES = ('paper', 'robust')
GridOffset = Union[int, Tuple[int, int]]
DEFAULT_SIGMA = {'paper': 1e-6, 'robust': 1e-2}


@lru_cache(maxsize=None)
def _dct_matrix(p: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``D`` (p x p, float64): ``coeffs = D @ x``."""
    n = torch.arange(p, dtype=torch.float64)
    k = n[:, None]
    d = torch.cos(math.pi * (2 * n[None, :] + 1) * k / (2 * p)) * math.sqrt(2.0 / p)
    d[0] /= math.sqrt(2.0)
    return d


# float64 elements per chunk (~2 MB): the float64 copy of a chunk stays in cache
CHUNK_ELEMENTS = 1 << 18


def grid_offsets(grid_offset: GridOffset, patch_size: int) -> Tuple[int, int]:
    """``(oy, ox)`` from an int (both axes) or a pair, each in ``[0, patch_size)``."""
    pair = (grid_offset, grid_offset) if isinstance(grid_offset, int) else grid_offset
    try:
        oy, ox = pair
    except (TypeError, ValueError):
        raise ValueError('FRM grid_offset must be an int or a pair (rows, columns) '
                         f'of ints in [0, patch_size={patch_size}), got '
                         f'{grid_offset!r}') from None
    for value in (oy, ox):
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 0 <= value < patch_size:
            raise ValueError(f'FRM grid_offset {grid_offset!r}: {value!r} is not an '
                             f'int in [0, patch_size={patch_size})')
    return oy, ox


def _check_args(images: torch.Tensor, p: int, q: int,
                offset: Tuple[int, int]) -> Tuple[int, int]:
    if images.ndim != 4:
        raise ValueError('FRM expects a (B, C, H, W) batch, got shape '
                         f'{tuple(images.shape)}')
    if p < 2 or q < 1 or 2 * q > p:
        raise ValueError(f'FRM needs 1 <= band_size and 2 * band_size <= patch_size,'
                         f' got patch_size={p}, band_size={q}')
    h, w = images.shape[2:]
    if h - offset[0] < p or w - offset[1] < p:
        raise ValueError(f'FRM input {h}x{w} with grid offset {offset} is smaller '
                         f'than one {p}x{p} patch')
    return (h - offset[0]) // p, (w - offset[1]) // p


def _iter_bands(images: torch.Tensor, p: int, q: int, offset: Tuple[int, int] = (0, 0)):
    """Yield ``(planes, low, high)`` chunk by chunk, in float64.

    ``low``/``high`` are ``(n, H // p, W // p, q, q)`` for ``n`` image planes.
    Separable: the patch columns are contracted with the 2q needed basis rows in one
    GEMM, then the patch rows; ``2 * q`` of ``p`` basis vectors are ever used.
    """
    hp, wp = _check_args(images, p, q, offset)
    oy, ox = offset
    d = _dct_matrix(p)
    # high basis rows p-1, ..., p-q: the bottom-right corner comes out flipped
    basis = torch.cat([d[:q], d[p - q:].flip(0)]).to(images.device)  # (2q, p)
    basis_t = basis.t().contiguous()
    planes = images.detach()[:, :, oy:oy + hp * p, ox:ox + wp * p]
    planes = planes.reshape(-1, hp * p, wp * p)
    step = max(1, CHUNK_ELEMENTS // (hp * p * wp * p))
    for start in range(0, planes.shape[0], step):
        x = planes[start:start + step].to(torch.float64)
        n = x.shape[0]
        cols = x.reshape(n * hp * p, wp, p) @ basis_t  # (n*H, wp, 2q)
        cols = cols.reshape(n, hp, p, wp * 2 * q)
        both = torch.matmul(basis, cols).reshape(n, hp, 2 * q, wp, 2 * q)
        low = both[:, :, :q, :, :q].permute(0, 1, 3, 2, 4)
        high = both[:, :, q:, :, q:].permute(0, 1, 3, 2, 4)
        yield x, low, high


def dct_bands(images: torch.Tensor,
              patch_size: int = 8,
              band_size: int = 2,
              grid_offset: GridOffset = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Low and (flipped) high DCT-II bands of every ``p x p`` patch, in float64.

    Args:
        images (Tensor): ``(B, C, H, W)`` batch.
        patch_size (int): Patch side ``p``.
        band_size (int): Band side ``q`` (``2 * q <= p``).
        grid_offset (int | tuple[int, int]): Where the patch grid starts (see
            the module docstring). Defaults to 0, the paper's grid.

    Returns:
        tuple[Tensor, Tensor]: ``low[..., a, b] = C[a, b]`` and
        ``high[..., a, b] = C[p-1-a, p-1-b]``, each
        ``(B, C, H // p, W // p, q, q)``.
    """
    b, c = images.shape[:2]
    lows, highs = [], []
    p = int(patch_size)
    offset = grid_offsets(grid_offset, p)
    for _, low, high in _iter_bands(images, p, int(band_size), offset):
        lows.append(low)
        highs.append(high)
    shape = (b, c) + tuple(lows[0].shape[1:])
    return torch.cat(lows).reshape(shape), torch.cat(highs).reshape(shape)


def frequency_ratio_metric(images: torch.Tensor,
                           patch_size: int = 8,
                           band_size: int = 2,
                           sigma: float = None,
                           mode: str = 'paper',
                           grid_offset: GridOffset = 0) -> torch.Tensor:
    """Frequency Ratio Metric of one modality's batch.

    Args:
        images (Tensor): The modality's batch as fed to the network (after
            augmentation and normalisation), ``(B, C, H, W)``. Any float or integer
            dtype, any device. No gradient flows through the result.
        patch_size (int): Patch side ``p``. Defaults to 8.
        band_size (int): Band side ``q``. Defaults to 2.
        sigma (float, optional): ``'paper'``: the additive term of the denominator
            (default 1e-6, as the public release). ``'robust'``: ``eps``, the share of
            the flat-spectrum band energy added to the denominator (default 1e-2).
        mode (str): ``'paper'`` or ``'robust'`` (see the module docstring).
        grid_offset (int | tuple[int, int]): Rows and columns skipped before the
            patch grid starts (``0 <= offset < patch_size``; an int for both
            axes). Defaults to 0, the paper's grid.

    Returns:
        Tensor: A float64 scalar on the input's device; finite for finite input.
    """
    if mode not in FRM_MODES:
        raise ValueError(f'unknown FRM mode {mode!r}; expected one of {FRM_MODES}')
    sigma = DEFAULT_SIGMA[mode] if sigma is None else float(sigma)
    p, q = int(patch_size), int(band_size)
    offset = grid_offsets(grid_offset, p)
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    energy_high = torch.zeros_like(total)
    energy_ref = torch.zeros_like(total)
    with torch.no_grad():
        for x, low, high in _iter_bands(images, p, q, offset):
            if mode == 'paper':
                denom = high + sigma
                denom = torch.where(denom == 0, torch.full_like(denom, sigma), denom)
                total += (low / denom).abs().sum()
            else:
                total += low.square().sum()
                energy_high += high.square().sum()
                energy_ref += x.square().sum() * (q * q) / (p * p)
        if mode == 'paper':
            return total
        denom = energy_high + sigma * energy_ref
        # all-zero input: no energy anywhere, no preference
        return torch.where(denom > 0, total / denom.clamp_min(1e-300),
                           torch.zeros_like(total))


class FrequencyRatioMetric(nn.Module):
    """Module form of :func:`frequency_ratio_metric` (no parameters).

    Args:
        patch_size (int): Patch side ``p``. Defaults to 8.
        band_size (int): Band side ``q``. Defaults to 2.
        sigma (float, optional): See :func:`frequency_ratio_metric`.
        mode (str): ``'paper'`` or ``'robust'``. Defaults to ``'paper'``.
        grid_offset (int | tuple[int, int]): Where the patch grid starts.
            Defaults to 0, the paper's grid.
    """

    def __init__(self,
                 patch_size: int = 8,
                 band_size: int = 2,
                 sigma: float = None,
                 mode: str = 'paper',
                 grid_offset: GridOffset = 0):
        super().__init__()
        if mode not in FRM_MODES:
            raise ValueError(f'unknown FRM mode {mode!r}; expected one of {FRM_MODES}')
        self.patch_size = patch_size
        self.band_size = band_size
        self.sigma = DEFAULT_SIGMA[mode] if sigma is None else sigma
        self.mode = mode
        self.grid_offset = grid_offsets(grid_offset, int(patch_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return frequency_ratio_metric(images, self.patch_size, self.band_size,
                                      self.sigma, self.mode, self.grid_offset)

    def extra_repr(self) -> str:
        return (f'patch_size={self.patch_size}, band_size={self.band_size}, '
                f'sigma={self.sigma}, mode={self.mode!r}, '
                f'grid_offset={self.grid_offset}')
