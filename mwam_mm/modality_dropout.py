"""Modality dropout: which modalities a training sample loses, and how.

One sampler serves both places modality dropout can live: the pipeline transform
:class:`mwam_mm.datasets.ModalityDropout` (per sample, numpy's random state) and the
data preprocessors' ``modality_dropout`` option (per batch, torch's random state;
what the shipped ``_moddrop`` configs use, because a config can switch it on by
inheritance alone).

Protocols:

- ``'subsets'``: the kept modalities are drawn uniformly over the non-empty subsets
  (RGB-T: both, RGB only, thermal only, 1/3 each), as the missing-modality method
  that hosts MWAM in its authors' release (MMANet) does.
- ``'rate'``: with probability ``prob`` one modality, drawn by ``weights``, is lost.

Levels:

- ``'input'``: the lost modality's pixels are blanked (``fill``) and the model is not
  told: it must learn to cope with a black or mean frame.
- ``'feature'``: the sample is marked ``missing_modalities`` and the dual-stream
  backbone replaces that stream's features before fusion (the release multiplies
  the encoder outputs by 0); the stream still runs.
"""
from typing import Callable, List, Optional

from .modality import LayoutLike, ModalityLayout

PROTOCOLS = ('subsets', 'rate')
LEVELS = ('input', 'feature')
FILL_MODES = ('zero', 'mean')


class ModalityDropoutSampler:
    """Draws the modalities a sample loses.

    Args:
        protocol (str): ``'subsets'`` or ``'rate'`` (see the module docstring).
            Defaults to ``'rate'``.
        prob (float): ``'rate'`` only: probability of losing a modality.
        weights (dict, optional): ``'rate'`` only: ``{modality: relative
            probability}`` of being the one lost; uniform by default.
        level (str): ``'input'`` or ``'feature'``.
        fill (str): ``'input'`` only: ``'zero'`` (black) or ``'mean'``.
        modalities (list[dict], optional): Modality layout; ``None`` for default.
        owner (str): Name used in error messages.
    """

    def __init__(self,
                 protocol: str = 'rate',
                 prob: float = 0.5,
                 weights: Optional[dict] = None,
                 level: str = 'input',
                 fill: str = 'zero',
                 modalities: LayoutLike = None,
                 owner: str = 'ModalityDropout'):
        if protocol not in PROTOCOLS:
            raise ValueError(f'{owner}: unknown protocol {protocol!r}; expected one '
                             f'of {PROTOCOLS}')
        if level not in LEVELS:
            raise ValueError(f'{owner}: unknown level {level!r}; expected one of '
                             f'{LEVELS}')
        if fill not in FILL_MODES:
            raise ValueError(f'{owner}: unknown fill {fill!r}; expected one '
                             f'of {FILL_MODES}')
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f'{owner}: prob must be in [0, 1], got {prob}')
        self.layout = ModalityLayout.build(modalities)
        weights = dict(weights or {m: 1.0 for m in self.layout.names})
        self.layout.check_subset(list(weights))
        total = float(sum(weights.values()))
        if total <= 0 or any(w < 0 for w in weights.values()):
            raise ValueError(f'{owner}: weights must be >= 0 and sum to > 0, got '
                             f'{weights}')
        self.protocol, self.level, self.fill, self.prob = protocol, level, fill, prob
        self.names = list(weights)
        self.probs = [weights[n] / total for n in self.names]
        self.subsets = self.layout.non_empty_subsets()

    def draw(self, uniform: Callable[[], float]) -> List[str]:
        """The modalities one sample loses, from a source of U(0, 1) numbers."""
        if self.protocol == 'subsets':
            index = min(int(uniform() * len(self.subsets)), len(self.subsets) - 1)
            kept = self.subsets[index]
            return [m for m in self.layout.names if m not in kept]
        if uniform() >= self.prob:
            return []
        u, cumulative = uniform(), 0.0
        for name, p in zip(self.names, self.probs):
            cumulative += p
            if u < cumulative:
                return [name]
        return [self.names[-1]]

    def __repr__(self) -> str:
        rate = f', prob={self.prob}' if self.protocol == 'rate' else ''
        fill = f', fill={self.fill!r}' if self.level == 'input' else ''
        return f'protocol={self.protocol!r}{rate}, level={self.level!r}{fill}'
