"""The leaderboard from the runs' results: statistics over seeds per variant,
scenario, subset and split, the ceilings, and the marks against the baseline
(:mod:`mwam_mm.evaluation.statistics`)."""
from typing import Callable, Dict, List, Optional, Sequence

from mwam_mm.evaluation import (collapse_rate, compare, fraction_of_ceiling,
                                lower_is_better, paired_difference, seed_statistics)
from mwam_mm.evaluation.robustness import check_scenarios
from .runs import subset_names
from .variants import BASELINE


def _board(runs: Dict[str, List[dict]],
           view: Callable[[dict], Optional[dict]],
           scenarios: Sequence[str],
           subsets: Sequence[str],
           modalities: Sequence[str],
           baseline: Optional[str],
           lower_better: bool = False) -> dict:
    """Statistics over seeds of ``view(result) -> {scenario: {subset: score}}``
    (``lower_better``: the metric is a miss rate, for the collapse rates and the
    fractions of the ceilings)."""
    board = dict(variants={}, ceilings={})
    singles = [m for m in modalities if m in subsets]
    for variant, results in runs.items():
        views = [v for v in (view(r) for r in results) if v]
        ceiling = results[0].get('ceiling') if results else None
        entry = dict(seeds=[r['seed'] for r in results], ceiling=ceiling, scenarios={})
        for scenario in scenarios:
            per_seed = [v[scenario] for v in views if scenario in v]
            if not per_seed:
                continue
            own = [s for s in subsets if all(s in p for p in per_seed)]
            stats = dict(
                scores={s: seed_statistics([p[s] for p in per_seed])
                        for s in own})
            if ceiling is None and own == list(subsets):
                stats['mean'] = seed_statistics(
                    [sum(p[s] for s in subsets) / len(subsets) for p in per_seed])
                stats['collapse_rate'] = seed_statistics(
                    [collapse_rate(p, subsets, lower_better) for p in per_seed])
            entry['scenarios'][scenario] = stats
            if ceiling is not None and ceiling in stats['scores']:
                board['ceilings'].setdefault(ceiling, {})[scenario] = dict(
                    stats['scores'][ceiling], variant=variant)
        board['variants'][variant] = entry
    base = board['variants'].get(baseline) if baseline else None
    for variant, entry in board['variants'].items():
        for scenario, stats in entry['scenarios'].items():
            if entry['ceiling'] is None:
                stats['fraction_of_ceiling'] = {
                    m:
                    fraction_of_ceiling(stats['scores'][m],
                                        board['ceilings'].get(m, {}).get(scenario),
                                        lower_better)
                    for m in singles if m in stats['scores']
                }
            if base is None or variant == baseline or \
                    scenario not in base['scenarios']:
                continue
            own = base['scenarios'][scenario]
            marks = {
                s: compare(x, own['scores'][s])
                for s, x in stats['scores'].items() if s in own['scores']
            }
            for key in ('mean', 'collapse_rate'):
                if key in stats and key in own:
                    marks[key] = compare(stats[key], own[key])
            stats['vs_baseline'] = marks
    return board


def _degradation_board(runs: Dict[str, List[dict]], baseline: Optional[str]) -> dict:
    """Per variant: clean score, robustness score (rPC) and mPC per modality, and
    the relative score per degradation and modality, with statistics over seeds
    (per split too)."""

    def one(results: List[dict]) -> dict:
        first = results[0]
        out = dict(
            clean=seed_statistics([r['clean'] for r in results]),
            modalities={},
            degradations={})
        for m in first['summary']['modalities']:
            out['modalities'][m] = {
                k:
                seed_statistics(
                    [r['summary']['modalities'].get(m, {}).get(k) for r in results])
                for k in ('rPC', 'mPC')
            }
        for name, per_mod in first['summary']['degradations'].items():
            out['degradations'][name] = {
                m:
                seed_statistics([
                    r['summary']['degradations'].get(name, {}).get(m,
                                                                   {}).get('relative')
                    for r in results
                ])
                for m in per_mod
            }
        return out

    board = {}
    for variant, results in runs.items():
        found = [r['degradations'] for r in results if r.get('degradations')]
        if not found:
            continue
        entry = one(found)
        splits = sorted({s for d in found for s in d.get('splits', {})})
        entry['splits'] = {
            s: one([d['splits'][s] for d in found if s in d.get('splits', {})])
            for s in splits
        }
        board[variant] = entry
    base = board.get(baseline) if baseline else None
    for variant, entry in board.items():
        if base is None or variant == baseline:
            continue
        entry['vs_baseline'] = {
            m: compare(x['rPC'], base['modalities'][m]['rPC'])
            for m, x in entry['modalities'].items() if m in base['modalities']
        }
    return board


def _by_seed(results: List[dict], scenario: str, subsets: Sequence[str]) -> dict:
    """``{subset | 'mean': {seed: score}}`` of one variant in one scenario."""
    out = {}
    for result in results:
        scores = result['scenarios'].get(scenario) or {}
        for subset, value in scores.items():
            if value is not None:
                out.setdefault(subset, {})[result['seed']] = float(value)
        if all(scores.get(s) is not None for s in subsets):
            out.setdefault('mean', {})[result['seed']] = \
                sum(scores[s] for s in subsets) / len(subsets)
    return out


def _paired(runs: Dict[str, List[dict]], scenarios: Sequence[str],
            subsets: Sequence[str], controls: Sequence[str]) -> dict:
    """Per control, variant, scenario and subset (and the mean over subsets):
    :func:`paired_difference` of the variant minus the control over the seeds
    both have (the runs of one seed share data order and initialisation)."""
    out = {}
    for control in controls:
        table = {}
        for variant, results in runs.items():
            if variant == control:
                continue
            entry = {}
            for scenario in scenarios:
                own = _by_seed(results, scenario, subsets)
                other = _by_seed(runs[control], scenario, subsets)
                cells = {}
                for key, values in own.items():
                    seeds = sorted(set(values) & set(other.get(key, {})))
                    if seeds:
                        cells[key] = dict(
                            paired_difference(
                                [values[s] - other[key][s] for s in seeds]),
                            seeds=seeds)
                if cells:
                    entry[scenario] = cells
            if entry:
                table[variant] = entry
        out[control] = table
    return out


# a converged curve's last third adds at most this share of its whole rise
CONVERGED_SHARE_OF_RISE = 0.1


def curve_board(runs: Dict[str, List[dict]]) -> dict:
    """The training curves of the variants that recorded one (the references,
    see ``RunOptions.curve_interval``): per point, the statistics over seeds,
    and whether the curve has stopped improving.

    Convergence: the per-seed gain over the last third of the schedule (the
    last point's score minus the score at the last point at or before two
    thirds of the length), its mean and 95 % t interval
    (:func:`paired_difference`). The reference **has converged** when the
    interval's upper end is at most a tenth of the curve's rise (the mean score
    at the last point minus at the first: ``tolerance``), so that the last third
    cannot have added more than that; it **is still improving** when the
    interval lies above 0 otherwise. Between the two (the seeds disagree), with
    one seed, or with no point before two thirds, it is **undetermined**
    (``converged`` None): a wide interval is no evidence of a flat curve. The
    points are those every seed's curve has. For a metric whose lower values
    are better (a miss rate) the gain and the rise are its fall, so that the
    verdicts read the same.

    Returns:
        dict: ``{variant: {metric, unit, points, scores: [stats per point],
        seeds, last_third: paired_difference | None, from_point, tolerance,
        converged: bool | None}}``.
    """
    board = {}
    for variant, results in runs.items():
        curves = [(r['seed'], r['curve']) for r in results if r.get('curve')]
        if not curves:
            continue
        first = curves[0][1]
        # a miss rate improves as it falls: gains and rise are then its fall
        sign = -1.0 if lower_is_better(first['metric']) else 1.0
        # the points every seed has (a run resumed from a checkpoint saved where
        # it then validated lacks that point), each seed's scores there
        common = set.intersection(*(set(c['points']) for _, c in curves))
        points = [p for p in first['points'] if p in common]
        if not points:
            continue
        curves = [(seed, [dict(zip(c['points'], c['scores']))[p] for p in points])
                  for seed, c in curves]
        entry = dict(
            metric=first['metric'],
            unit=first['unit'],
            points=points,
            seeds=[seed for seed, _ in curves],
            scores=[
                seed_statistics([scores[i] for _, scores in curves])
                for i in range(len(points))
            ],
            last_third=None,
            from_point=None,
            tolerance=None,
            converged=None)
        earlier = [i for i, p in enumerate(points[:-1]) if p <= 2 * points[-1] / 3]
        if earlier:
            start = earlier[-1]
            entry['from_point'] = points[start]
            if len(curves) > 1:
                gain = paired_difference(
                    [sign * (scores[-1] - scores[start]) for _, scores in curves])
                rise = sign * (entry['scores'][-1]['mean'] - entry['scores'][0]['mean'])
                tolerance = CONVERGED_SHARE_OF_RISE * max(rise, 0.0)
                entry.update(last_third=gain, tolerance=tolerance)
                if gain['high'] <= tolerance:
                    entry['converged'] = True
                elif gain['low'] > 0:
                    entry['converged'] = False
        board[variant] = entry
    return board


def aggregate(runs: Dict[str, List[dict]],
              scenarios: Optional[Sequence[str]] = None,
              baseline: str = BASELINE,
              controls: Sequence[str] = ()) -> dict:
    """The leaderboard from ``{variant: [run_variant results, one per seed]}``.

    Args:
        runs (dict): The results per variant (any order of seeds).
        scenarios (Sequence[str], optional): Default: those of the results.
        baseline (str): The variant the others are compared with (no marks
            when it is absent).
        controls (Sequence[str]): Further variants to compare every variant
            with, paired by seed (``paired``), next to the baseline.

    Returns:
        dict: ``metric``, ``scenarios``, ``subsets``, ``modalities``,
        ``baseline``, ``seeds``, ``variants: {variant: {seeds, ceiling,
        scenarios: {scenario: {scores: {subset: stats}, mean, collapse_rate,
        fraction_of_ceiling: {modality: ratio}, vs_baseline: {subset | 'mean' |
        'collapse_rate': {diff, threshold, marked}}}}}}``, ``ceilings:
        {modality: {scenario: stats}}``, ``splits: {split: {variants,
        ceilings}}`` and ``degradations: {variant: ...}``. ``stats`` are
        :func:`seed_statistics`; ceilings have their own subset only, and no
        mean, collapse rate or fraction. ``paired: {control: {variant:
        {scenario: {subset | 'mean': paired_difference + seeds}}}}`` for the
        baseline and each of ``controls``: the per-seed differences' mean and 95 %
        t interval (:func:`mwam_mm.evaluation.paired_difference`).
        ``curves``: :func:`curve_board` (the references' training curves).
    """
    runs = {v: list(rs) for v, rs in runs.items() if rs}
    if not runs:
        raise ValueError('aggregate: no results')
    first = next(iter(runs.values()))[0]
    if scenarios is None:
        scenarios = list(
            dict.fromkeys(s for rs in runs.values() for r in rs
                          for s in r['scenarios']))
    scenarios = check_scenarios(scenarios) if scenarios else []
    modalities = first['modalities']
    subsets = first.get('subsets') or subset_names(modalities)
    metrics = {r['metric'] for rs in runs.values() for r in rs}
    if len(metrics) > 1:
        raise ValueError(f'aggregate: the runs report different metrics {metrics}')
    baseline = baseline if baseline in runs else None
    board = dict(
        metric=first['metric'],
        scenarios=list(scenarios),
        subsets=list(subsets),
        modalities=list(modalities),
        baseline=baseline,
        seeds=sorted({r['seed']
                      for rs in runs.values()
                      for r in rs}))
    lower_better = lower_is_better(board['metric'])
    board.update(
        _board(runs, lambda r: r['scenarios'], scenarios, subsets, modalities, baseline,
               lower_better))
    splits = list(
        dict.fromkeys(s for rs in runs.values() for r in rs
                      for s in r.get('splits', {})))
    board['splits'] = {
        split:
        _board(
            runs,
            lambda r, s=split: r.get('splits', {}).get(s),
            scenarios,
            subsets,
            modalities,
            baseline,
            lower_better)
        for split in splits
    }
    board['degradations'] = _degradation_board(runs, baseline)
    unknown = [c for c in controls if c not in runs]
    if unknown:
        raise ValueError(f'aggregate: the control(s) {unknown} have no results; '
                         f'variants with results: {sorted(runs)}')
    board['controls'] = list(
        dict.fromkeys(([baseline] if baseline else []) + list(controls)))
    board['paired'] = _paired(runs, scenarios, subsets, board['controls'])
    board['curves'] = curve_board(runs)
    return board


__all__ = ['aggregate', 'curve_board']
