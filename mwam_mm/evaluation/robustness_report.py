"""Reports of the missing-modality robustness evaluation: markdown tables and
charts of the scores per modality subset, scenario, split and degradation
(:func:`write_report`; the numbers come from :mod:`mwam_mm.evaluation.robustness`).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from .robustness import check_scenarios
from .statistics import lower_is_better


def _summary_cells(summary: dict, subsets: Sequence[str]) -> List[str]:
    pcr = summary['collapse_rate']
    return [f'{summary["scores"][s]:.3f}' for s in subsets] + \
        [f'{summary["mean"]:.3f}', 'n/a' if pcr is None else f'{pcr:.1f}']


def _rows(keyed: Dict[tuple, dict], keys: Sequence[str], metric: str) -> str:
    """A table with the key columns, then a summary's cells per row."""
    subsets = list(next(iter(keyed.values()))['scores'])
    head = list(keys) + [f'{s} {metric}' for s in subsets] + ['mean', 'PCR (%)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for key, summary in keyed.items():
        lines.append('| ' + ' | '.join(list(key) + _summary_cells(summary, subsets)) +
                     ' |')
    return '\n'.join(lines) + '\n'


def markdown_table(results: Dict[str, Dict[str, dict]], metric: str) -> str:
    """One row per variant and scenario: score per subset, mean, collapse rate.

    Args:
        results (dict): ``{scenario: {variant: summary}}`` (see :func:`summarize`).
        metric (str): Metric name for the column headers.
    """
    variants = list(dict.fromkeys(v for per in results.values() for v in per))
    keyed = {
        (v, scenario): per[v]
        for v in variants
        for scenario, per in results.items() if v in per
    }
    return _rows(keyed, ('variant', 'scenario'), metric)


def split_markdown_table(splits: Dict[str, Dict[str, Dict[str, dict]]],
                         metric: str) -> str:
    """One row per variant, split and scenario (see :func:`markdown_table`).

    Args:
        splits (dict): ``{split: {scenario: {variant: summary}}}``.
        metric (str): Metric name for the column headers.
    """
    variants = list(
        dict.fromkeys(v for per_split in splits.values() for per in per_split.values()
                      for v in per))
    keyed = {
        (v, split, scenario): per[v]
        for v in variants
        for split, per_split in splits.items()
        for scenario, per in per_split.items() if v in per
    }
    return _rows(keyed, ('variant', 'split', 'scenario'), metric)


def bar_chart(results: Dict[str, Dict[str, dict]], metric: str, path: str) -> str:
    """Bars per subset per variant, one panel per scenario, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    first = next(iter(results.values()))
    subsets = list(next(iter(first.values()))['scores'])
    top = max(
        max(s['scores'].values()) for per in results.values() for s in per.values())
    fig, axes = plt.subplots(
        1,
        len(results),
        figsize=(len(results) * (1.8 + 1.6 * len(subsets)), 3.6),
        squeeze=False)
    for ax, (scenario, summaries) in zip(axes[0], results.items()):
        width = 0.8 / len(summaries)
        for i, (variant, summary) in enumerate(summaries.items()):
            xs = [j + i * width for j in range(len(subsets))]
            bars = ax.bar(
                xs, [summary['scores'][s] for s in subsets], width, label=variant)
            ax.bar_label(bars, fmt='%.2f', fontsize=6)
        ax.set_xticks(
            [j + width * (len(summaries) - 1) / 2 for j in range(len(subsets))],
            subsets)
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1.05 * max(1e-6, top))
        ax.legend(fontsize=7)
        ax.set_title(f'scenario {scenario!r}: score per available subset', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _percent(x: Optional[float]) -> str:
    return 'n/a' if x is None else f'{100 * x:.1f}'


def degradation_markdown(degradations: Dict[str, dict], metric: str) -> str:
    """Per variant: a row per modality, degradation and sample split with the
    score per severity, their mean and its ratio to the clean score, then the
    robustness score (rPC) per modality.

    Args:
        degradations (dict): ``{variant: the 'degradations' entry of
            evaluate_robustness}``.
        metric (str): Metric name for the text.
    """
    out = []
    for variant, result in degradations.items():
        views = [('all', result)] + list(result.get('splits', {}).items())
        severities = sorted({
            int(s)
            for per_mod in result['scores'].values()
            for per_sev in per_mod.values()
            for s in per_sev
        })
        head = ['modality', 'degradation', 'samples'] + \
            [f'severity {s}' for s in severities] + ['mean', 'of clean (%)']
        out += [
            f'### {variant}: {metric} under degradation (clean: ' +
            ', '.join(f'{v} {r["clean"]:.3f}'
                      for v, r in views if r['clean'] is not None) + ')', '',
            '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)
        ]
        for name, per_mod in result['scores'].items():
            for modality in per_mod:
                for view, r in views:
                    per_sev = r['scores'].get(name, {}).get(modality, {})
                    if not per_sev:
                        continue
                    summary = r['summary']['degradations'][name][modality]
                    cells = [modality, name, view]
                    cells += [
                        f'{per_sev[str(s)]:.3f}' if str(s) in per_sev else ''
                        for s in severities
                    ]
                    cells += [f'{summary["mean"]:.3f}', _percent(summary['relative'])]
                    out.append('| ' + ' | '.join(cells) + ' |')
        out.append('')
        for view, r in views:
            scores = ', '.join(f'{m} {_percent(s["rPC"])}'
                               for m, s in r['summary']['modalities'].items())
            out.append(f'- robustness score ({view}; rPC: mean score under '
                       f'degradation, % of clean): {scores}')
        out.append('')
    return '\n'.join(out)


def degradation_chart(degradations: Dict[str, dict], metric: str, path: str) -> str:
    """Score against severity (0 = clean), a panel per variant and modality, a
    line per degradation; as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [(variant, modality) for variant, result in degradations.items()
              for modality in result['summary']['modalities']]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (variant, modality) in zip(axes[0], panels):
        result = degradations[variant]
        for name, per_mod in result['scores'].items():
            per_sev = per_mod.get(modality)
            if not per_sev:
                continue
            xs = [0] + sorted(int(s) for s in per_sev)
            ys = [result['clean']] + [per_sev[str(s)] for s in xs[1:]]
            ax.plot(xs, ys, marker='o', markersize=3, label=name)
        ax.set_xlabel('severity (0: clean)')
        ax.set_ylabel(metric)
        ax.set_ylim(bottom=0)
        title = f'{modality} degraded'
        ax.set_title(
            title if len(degradations) == 1 else f'{variant}: {title}', fontsize=9)
        ax.legend(fontsize=7)
    if len(degradations) == 1:
        fig.suptitle(next(iter(degradations)), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# the legend's line for a miss rate: its summaries read the other way round
LOWER_IS_BETTER_NOTE = (
    '`{metric}` is a miss rate: lower is better. PCR is then the mean relative '
    'rise (%) of the single-modality rates over the full-modality one (positive: '
    'worse, as for mAP), and a robustness score (rPC) the clean rate as a share of '
    'the degraded one (below 100 %: worse, as for mAP).\n')


def write_report(results: Dict[str, Dict[str, dict]],
                 metric: str,
                 out_dir: str,
                 name: str = 'robustness',
                 extra: Optional[dict] = None,
                 splits: Optional[Dict[str, Dict[str, Dict[str, dict]]]] = None,
                 degradations: Optional[Dict[str, dict]] = None) -> dict:
    """Write ``{name}.md``, ``{name}.json`` and ``{name}.png`` into ``out_dir``
    (and ``{name}_degradations.png`` with degradations).

    Args:
        results (dict): ``{scenario: {variant: summary}}``; the JSON keeps it
            under ``scenarios``, one summary per variant under each scenario's
            name. May be empty when ``degradations`` are given.
        metric (str): Metric name for the headers.
        out_dir (str): Folder to write to.
        name (str): File name stem.
        extra (dict, optional): More keys for the JSON.
        splits (dict, optional): ``{split: {scenario: {variant: summary}}}``:
            the same per split of the test samples (JSON ``splits``).
        degradations (dict, optional): ``{variant: the 'degradations' entry of
            evaluate_robustness}`` (JSON ``degradations``).

    Returns:
        dict: The paths written (``markdown``, ``json``, ``chart`` when there
        are scenarios, ``degradation_chart`` when there are degradations) and
        the main ``table``.
    """
    if results:
        check_scenarios(list(results))
    elif not degradations:
        raise ValueError('write_report: nothing to report (no scenario results and '
                         'no degradations)')
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(
        markdown=osp.join(out_dir, f'{name}.md'),
        json=osp.join(out_dir, f'{name}.json'))
    table = markdown_table(results, metric) if results else ''
    text = [f'# Robustness ({metric})\n']
    if results:
        text.append(f'## Missing modalities\n\n{table}\n'
                    'Scenarios: `blank`: the missing camera gives black (or mean) '
                    'frames and the model is not told; `missing`: the model is told '
                    '(missing_modalities).\nPCR: mean relative drop (%) of the '
                    'single-modality scores from the full-modality score.\n')
    if lower_is_better(metric):
        text.append(LOWER_IS_BETTER_NOTE.format(metric=metric))
    splits = {s: per for s, per in (splits or {}).items() if any(per.values())}
    if splits:
        text.append('## Per split of the test samples\n\n'
                    f'{split_markdown_table(splits, metric)}')
    if degradations:
        text.append('## Degradations (every modality present, one degraded)\n\n'
                    f'{degradation_markdown(degradations, metric)}')
    with open(paths['markdown'], 'w') as f:
        f.write('\n'.join(text))
    payload = dict(metric=metric, scenarios=results)
    if splits:
        payload['splits'] = splits
    if degradations:
        payload['degradations'] = degradations
    with open(paths['json'], 'w') as f:
        json.dump(dict(payload, **(extra or {})), f, indent=2)
    if results:
        paths['chart'] = bar_chart(results, metric, osp.join(out_dir, f'{name}.png'))
    if degradations:
        paths['degradation_chart'] = degradation_chart(
            degradations, metric, osp.join(out_dir, f'{name}_degradations.png'))
    return dict(paths, table=table)
