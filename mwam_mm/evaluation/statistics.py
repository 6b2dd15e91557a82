"""Statistics over training seeds: a score's mean, spread and standard error,
and whether two methods' means differ by more than two standard errors.

The mean and the sample standard deviation (n - 1) over seeds, the standard
error ``se = std / sqrt(n)``; a score is marked as differing from a reference
score when

    |mean - mean_ref| > 2 * sqrt(se ** 2 + se_ref ** 2)

(two standard errors of the difference of two independent means; with one seed
there is no standard error and nothing is marked). Runs paired by seed (same
data order and initialisation) are compared by the mean of the per-seed
differences and its 95 % t interval (:func:`paired_difference`).

Summaries that say "better" or "worse" (a score as a share of a reference's, a
collapse rate, a training curve's gain) read a metric's direction from its key
(:func:`lower_is_better`): a miss rate improves as it falls.
"""
import math
import statistics
from typing import Optional, Sequence

__all__ = [
    'seed_statistics', 'compare', 'fraction_of_ceiling', 'paired_difference',
    'lower_is_better', 'relative_score'
]

# the names (after the last '/') of the metrics whose lower values are better:
# KAISTMissRate's log-average miss rates, ``kaist/MR_<setting>[_day|_night]``
LOWER_IS_BETTER_PREFIXES = ('MR_', )


def lower_is_better(metric: Optional[str]) -> bool:
    """Whether a lower value of the test metric ``metric`` (its key as the
    evaluator reports it, prefix included, e.g. ``'kaist/MR_all'``) is better:
    a miss rate (:data:`LOWER_IS_BETTER_PREFIXES`). mAP and mIoU are not."""
    return str(metric or '').rsplit('/', 1)[-1].startswith(LOWER_IS_BETTER_PREFIXES)


def relative_score(score: Optional[float],
                   reference: Optional[float],
                   lower_better: bool = False) -> Optional[float]:
    """``score`` as a share of ``reference``, above 1 where it is better:
    ``score / reference``, or ``reference / score`` for a metric whose lower
    values are better (a miss rate); None when either is None or the divisor
    is 0."""
    if score is None or reference is None:
        return None
    num, den = (reference, score) if lower_better else (score, reference)
    return num / den if den else None


def seed_statistics(values: Sequence[Optional[float]]) -> dict:
    """Mean, sample standard deviation (n - 1), standard error and count of the
    values that are not None (std and se None below two values)."""
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if not n:
        return dict(mean=None, std=None, se=None, n=0, values=[])
    std = statistics.stdev(values) if n > 1 else None
    return dict(
        mean=math.fsum(values) / n,
        std=std,
        se=std / math.sqrt(n) if std is not None else None,
        n=n,
        values=values)


def compare(stats: dict, base: dict) -> Optional[dict]:
    """``stats`` against a reference's (``base``, e.g. the baseline method's):
    the difference of the means, the two-standard-error threshold
    ``2 sqrt(se^2 + se_base^2)`` and whether the difference exceeds it (None
    without standard errors)."""
    if stats.get('mean') is None or base.get('mean') is None:
        return None
    diff = stats['mean'] - base['mean']
    if stats.get('se') is None or base.get('se') is None:
        return dict(diff=diff, threshold=None, marked=None)
    threshold = 2.0 * math.sqrt(stats['se']**2 + base['se']**2)
    return dict(diff=diff, threshold=threshold, marked=abs(diff) > threshold)


def fraction_of_ceiling(stats: dict,
                        ceiling: Optional[dict],
                        lower_better: bool = False) -> Optional[float]:
    """The mean score as a share of the ceiling's mean, above 1 where it is
    better (:func:`relative_score`; None without a ceiling)."""
    if ceiling is None:
        return None
    return relative_score(stats.get('mean'), ceiling.get('mean'), lower_better)


# two-sided 95 % quantiles of Student's t, by degrees of freedom
T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042
}


def t95(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom
    (the tabulated one at or below ``df``: conservative; nan below 1)."""
    known = [d for d in sorted(T95) if d <= df]
    return T95[known[-1]] if known else float('nan')


def paired_difference(diffs: Sequence[float]) -> dict:
    """The mean of per-seed differences (method minus control, same seeds) with
    its 95 % t interval.

    Returns:
        dict: ``n``, ``diff`` (the mean), ``low``, ``high`` (the interval; None
        with one difference), ``excludes_zero`` (None with one difference) and
        ``diffs``.
    """
    diffs = list(diffs)
    n = len(diffs)
    mean = statistics.fmean(diffs)
    half = t95(n - 1) * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else None
    return dict(
        n=n,
        diff=mean,
        low=None if half is None else mean - half,
        high=None if half is None else mean + half,
        excludes_zero=None if half is None else (mean - half > 0 or mean + half < 0),
        diffs=diffs)
