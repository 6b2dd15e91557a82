"""MWAM: turning per-modality FRM values into per-modality weights K_m.

Per training iteration, for modalities ``m = 1..M``::

    bank_m <- w * bank_m + (1 - w) * FRM_m            (bank updated first)
    T_m     = FRM_m / (mean_m(bank_m) + sigma)
    K_m     = alpha - beta * sigmoid(lambda * (T_m - gamma))

``K_m`` decreases with ``T_m``: the modality with the higher FRM (the preferred one) is
slowed down, the others are sped up; ``K_m`` lies in ``(alpha - beta, alpha)``.
"""
import math
from typing import Dict, Optional, Sequence

# alpha, beta, lambda, gamma
MWAM_PRESETS = {
    'paper': dict(alpha=1.5, beta=1.0, lam=6.0, gamma=0.7),
    'release': dict(alpha=1.5, beta=1.0, lam=10.0, gamma=1.0),
}
BANK_INITS = ('first', 'soft')


class MWAMWeighting:
    """Bank of FRM values and the weight formula of MWAM.

    Pure Python floats: it is called once per iteration with M numbers, so tensors
    would only add device synchronisation.

    Args:
        modalities (Sequence[str]): Modality names, in layout order.
        preset (str): ``'paper'`` (alpha 1.5, beta 1, lambda 6, gamma 0.7) or
            ``'release'`` (1.5, 1, 10, 1). Defaults to ``'paper'``.
        alpha, beta, lam, gamma (float, optional): Override the preset's value.
        momentum (float): Bank EMA factor ``w``. Defaults to 0.5.
        bank_init (str): ``'first'`` (the paper: the bank starts at the first FRM)
            or ``'soft'`` (the public release: it starts at ``(1 - w) * FRM``).
        sigma (float): Added to the mean bank in ``T_m``. Defaults to 1e-6.
    """

    def __init__(self,
                 modalities: Sequence[str],
                 preset: str = 'paper',
                 alpha: Optional[float] = None,
                 beta: Optional[float] = None,
                 lam: Optional[float] = None,
                 gamma: Optional[float] = None,
                 momentum: float = 0.5,
                 bank_init: str = 'first',
                 sigma: float = 1e-6):
        if preset not in MWAM_PRESETS:
            raise ValueError(f'unknown MWAM preset {preset!r}; expected one of '
                             f'{sorted(MWAM_PRESETS)}')
        if bank_init not in BANK_INITS:
            raise ValueError(f'unknown bank_init {bank_init!r}; expected one of '
                             f'{BANK_INITS}')
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'momentum must be in [0, 1), got {momentum}')
        params = dict(MWAM_PRESETS[preset])
        for key, value in dict(alpha=alpha, beta=beta, lam=lam, gamma=gamma).items():
            if value is not None:
                params[key] = float(value)
        self.modalities = list(modalities)
        self.preset = preset
        self.alpha = params['alpha']
        self.beta = params['beta']
        self.lam = params['lam']
        self.gamma = params['gamma']
        self.momentum = float(momentum)
        self.bank_init = bank_init
        self.sigma = float(sigma)
        self.bank: Dict[str, float] = {}
        self.steps = 0

    def weight(self, ratio: float) -> float:
        """``K = alpha - beta * sigmoid(lambda * (T - gamma))``."""
        z = self.lam * (ratio - self.gamma)
        # numerically safe logistic
        if z >= 0:
            s = 1.0 / (1.0 + math.exp(-z))
        else:
            e = math.exp(z)
            s = e / (1.0 + e)
        return self.alpha - self.beta * s

    def update(self, frm: Dict[str, float]) -> Dict[str, float]:
        """Update the bank with this iteration's FRM and return ``{m: K_m}``.

        A modality whose FRM is not finite keeps its bank value and gets weight 1.
        All modalities get weight 1 while fewer than two have reached the bank
        (the others blank or missing from the start): a preference relative to
        the mean bank means nothing with one modality, and would slow the only
        camera that sees (``T = 1`` gives ``K = 0.64`` with the paper's preset).
        """
        missing = [m for m in self.modalities if m not in frm]
        if missing:
            raise KeyError(f'FRM missing for modalities {missing}; got {sorted(frm)}')
        finite = {
            m: float(frm[m])
            for m in self.modalities if math.isfinite(float(frm[m]))
        }
        w = self.momentum
        for m, value in finite.items():
            if m not in self.bank:
                self.bank[m] = value if self.bank_init == 'first' else (1 - w) * value
            else:
                self.bank[m] = w * self.bank[m] + (1 - w) * value
        self.steps += 1
        if len(self.bank) < min(2, len(self.modalities)):
            return {m: 1.0 for m in self.modalities}
        mean_bank = sum(self.bank.values()) / len(self.bank)
        weights = {}
        for m in self.modalities:
            if m in finite:
                weights[m] = self.weight(finite[m] / (mean_bank + self.sigma))
            else:
                weights[m] = 1.0
        return weights

    def state_dict(self) -> dict:
        return dict(bank=dict(self.bank), steps=self.steps)

    def load_state_dict(self, state: dict) -> None:
        bank = state.get('bank', {})
        unknown = set(bank) - set(self.modalities)
        if unknown:
            raise KeyError(f'MWAM state has bank entries for {sorted(unknown)}, '
                           f'but the modalities are {self.modalities}')
        self.bank = {m: float(v) for m, v in bank.items()}
        self.steps = int(state.get('steps', 0))
