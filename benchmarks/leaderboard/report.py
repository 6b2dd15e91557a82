"""The leaderboard's report: Markdown tables, a bar chart and the JSON."""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence

from mwam_mm.evaluation import lower_is_better


def format_stats(stats: Optional[dict], digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` (the mean alone with one seed), ``n/a`` without values."""
    if not stats or stats.get('mean') is None:
        return 'n/a'
    text = f'{stats["mean"] * scale:.{digits}f}'
    if stats.get('std') is not None:
        text += f' ± {stats["std"] * scale:.{digits}f}'
    return text


def format_fraction(fraction: float) -> str:
    """A single-camera score as % of its ceiling's; ``above`` where it exceeds
    the ceiling: a percentage over 100 would say more than it can (the
    reference is then weaker than the fused model's own view of that camera,
    e.g. not converged), the ratio is in the JSON."""
    return 'above' if fraction > 1 else f'{100 * fraction:.0f}'


def _cell(stats: Optional[dict], mark: Optional[dict], digits=3, scale=1.0) -> str:
    text = format_stats(stats, digits, scale)
    return text + ' *' if mark and mark.get('marked') else text


def _scenario_table(board: dict, scenario: str, key_cells=()) -> List[str]:
    subsets = board['subsets']
    singles = [m for m in board['modalities'] if m in subsets]
    rows = []
    for variant, entry in board['variants'].items():
        stats = entry['scenarios'].get(scenario)
        if stats is None:
            continue
        marks = stats.get('vs_baseline') or {}
        name = f'{variant} (ceiling)' if entry['ceiling'] else variant
        cells = [name] + list(key_cells)
        cells += [
            _cell(stats['scores'].get(s), marks.get(s)) if s in stats['scores'] else ''
            for s in subsets
        ]
        cells.append(
            _cell(stats.get('mean'), marks.get('mean')) if 'mean' in stats else '')
        cells.append(
            _cell(stats.get('collapse_rate'), marks.get('collapse_rate'), 1
                  ) if 'collapse_rate' in stats else '')
        fractions = stats.get('fraction_of_ceiling', {})
        cells += [
            format_fraction(fractions[m]) if fractions.get(m) is not None else
            ('' if entry['ceiling'] else 'n/a') for m in singles
        ]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return rows


def _table_head(board: dict, keys: Sequence[str]) -> List[str]:
    singles = [m for m in board['modalities'] if m in board['subsets']]
    head = ['variant'] + list(keys) + list(board['subsets']) + \
        ['mean', 'PCR (%)'] + [f'{m} / ceiling (%)' for m in singles]
    return ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]


def leaderboard_markdown(board: dict, extra_text: str = '') -> str:
    """The leaderboard as Markdown: a table per scenario, one per split, the
    degradations' robustness scores, and the legend."""
    seeds = board['seeds']
    out = [
        f'# Robustness leaderboard ({board["metric"]})', '',
        f'Seeds {seeds}: mean ± sample standard deviation over seeds per cell. '
        f'`*`: differs from `{board["baseline"]}` (same subset and scenario) by more '
        'than two standard errors, |mean - mean_baseline| > 2 sqrt(se^2 + '
        'se_baseline^2), se = std / sqrt(n seeds). PCR: mean relative drop (%) of '
        'the single-camera scores from the both-camera score. `x / ceiling`: the '
        'single-camera mean as % of the unimodal ceiling\'s mean (`above`: higher '
        'than the ceiling\'s mean; the ratio is in leaderboard.json). Ceilings use '
        'one camera in training and test; they are tested once on it, the same '
        'score for both scenarios.', ''
    ]
    if lower_is_better(board['metric']):
        out += [
            f'`{board["metric"]}` is a miss rate: lower is better. PCR is then the '
            'mean relative rise (%) of the single-camera rates over the both-camera '
            'one, `x / ceiling` the ceiling\'s mean as % of the single-camera mean '
            '(`above`: better than the ceiling), a robustness score (rPC) the clean '
            'rate as % of the degraded one, and a curve\'s gain the fall of its '
            'rate: each reads as it does for mAP.', ''
        ]
    for scenario in board['scenarios']:
        out += [f'## Scenario `{scenario}`', ''] + _table_head(board, ()) + \
            _scenario_table(board, scenario) + ['']
        for control in board.get('controls') or []:
            out += _paired_table(board, scenario, control)
    if board.get('splits'):
        out += ['## Per split of the test samples', '']
        out += _table_head(board, ('split', 'scenario'))
        for split, sub in board['splits'].items():
            sub = dict(board, **sub)
            for scenario in board['scenarios']:
                out += _scenario_table(sub, scenario, (split, scenario))
        out.append('')
    if board.get('degradations'):
        out += _degradation_lines(board)
    if board.get('curves'):
        out += curve_lines(board['curves'])
    if extra_text:
        out += [extra_text, '']
    return '\n'.join(out)


def format_paired(cell: Optional[dict], digits: int = 3) -> str:
    """``+0.012 [-0.030, +0.054] †`` (the mean per-seed difference, its 95 %
    t interval, † where the interval excludes 0); the mean alone with one seed."""
    if not cell:
        return ''
    text = f'{cell["diff"]:+.{digits}f}'
    if cell.get('low') is not None:
        text += f' [{cell["low"]:+.{digits}f}, {cell["high"]:+.{digits}f}]'
    return text + (' †' if cell.get('excludes_zero') else '')


def _paired_table(board: dict, scenario: str, control: str) -> List[str]:
    rows = []
    for variant, entry in (board.get('paired', {}).get(control) or {}).items():
        cells = entry.get(scenario)
        if not cells or board['variants'][variant]['ceiling']:
            continue
        seeds = max(len(c['seeds']) for c in cells.values())
        rows.append('| ' + ' | '.join(
            [variant, str(seeds)] +
            [format_paired(cells.get(s))
             for s in list(board['subsets']) + ['mean']]) + ' |')
    if not rows:
        return []
    head = ['variant', 'seeds'] + list(board['subsets']) + ['mean']
    return [
        f'Paired by seed, minus `{control}` (`{scenario}`): mean of the per-seed '
        'differences [95 % t interval, t with n - 1 degrees of freedom]; † where it '
        'excludes 0.', '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)
    ] + rows + ['']


def curve_lines(curves: dict) -> List[str]:
    """The references' training curves as a table (points as columns) and each
    one's convergence (:func:`~.board.curve_board`)."""
    out = ['## Training curves of the references', '']
    for variant, entry in curves.items():
        unit = entry['unit']
        head = ['variant', 'seeds'] + [f'{unit} {p}' for p in entry['points']]
        out += [
            '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head),
            '| ' + ' | '.join([variant, str(len(entry['seeds']))] +
                              [format_stats(s) for s in entry['scores']]) + ' |', ''
        ]
        gain = entry.get('last_third')
        if gain is None:
            out += [
                f'`{variant}`: convergence undetermined (needs 2+ seeds and a point '
                'at or before two thirds of the schedule).', ''
            ]
            continue
        verdict = {
            True: 'has converged',
            False: 'is still improving',
            None: 'is undetermined (the seeds disagree)'
        }[entry['converged']]
        out += [
            f'`{variant}` {verdict}: gain from {unit} {entry["from_point"]} to '
            f'{unit} {entry["points"][-1]} (the last point at or before two thirds '
            f'of the schedule to the end), paired by seed: {format_paired(gain)} '
            f'(95 % t interval; converged: its upper end at '
            f'most {entry["tolerance"]:.3f}, a tenth of the curve\'s rise; still '
            'improving: it lies above 0).', ''
        ]
    return out


def _degradation_lines(board: dict) -> List[str]:
    degr = board['degradations']
    modalities = list(dict.fromkeys(m for e in degr.values() for m in e['modalities']))
    names = list(dict.fromkeys(d for e in degr.values() for d in e['degradations']))
    head = ['variant', 'samples', 'clean'] + \
        [f'{m} robustness (%)' for m in modalities] + \
        [f'{d} on {m} (%)' for d in names for m in modalities
         if any(m in e['degradations'].get(d, {}) for e in degr.values())]
    pairs = [h[:-len(' (%)')].split(' on ') for h in head[3 + len(modalities):]]
    out = [
        '## Degradations (every camera present, one degraded)', '',
        'Robustness score: mean score under every degradation and severity of that '
        'camera, % of the clean score (rPC, Michaelis et al. 2019); per '
        'degradation: the mean over its severities, % of clean. `*`: robustness '
        'differs from the baseline\'s by more than two standard errors.', '',
        '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)
    ]
    for variant, entry in degr.items():
        views = [('all', entry)] + list(entry.get('splits', {}).items())
        for view, e in views:
            marks = entry.get('vs_baseline', {}) if view == 'all' else {}
            cells = [variant, view, format_stats(e['clean'])]
            cells += [
                _cell(e['modalities'].get(m, {}).get('rPC'), marks.get(m), 1, 100)
                for m in modalities
            ]
            cells += [
                format_stats(e['degradations'].get(d, {}).get(m), 1, 100)
                for d, m in pairs
            ]
            out.append('| ' + ' | '.join(cells) + ' |')
    return out + ['']


def leaderboard_chart(board: dict, path: str) -> str:
    """Bars (mean, std as error bars) per subset and variant, a panel per
    scenario; each ceiling a dashed line over its subset's bars; as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    subsets = board['subsets']
    fused = {v: e for v, e in board['variants'].items() if not e['ceiling']}
    scenarios = board['scenarios']
    fig, axes = plt.subplots(
        1,
        len(scenarios),
        figsize=(len(scenarios) * (2.0 + 0.5 * len(subsets) * max(1, len(fused))), 3.8),
        squeeze=False)
    width = 0.8 / max(1, len(fused))
    for ax, scenario in zip(axes[0], scenarios):
        for i, (variant, entry) in enumerate(fused.items()):
            scores = entry['scenarios'].get(scenario, {}).get('scores', {})
            means = [(scores.get(s) or {}).get('mean') or 0.0 for s in subsets]
            errors = [(scores.get(s) or {}).get('std') or 0.0 for s in subsets]
            xs = [j + i * width for j in range(len(subsets))]
            ax.bar(xs, means, width, yerr=errors, capsize=2, label=variant)
        for modality, per in board.get('ceilings', {}).items():
            if scenario not in per or modality not in subsets:
                continue
            j = subsets.index(modality)
            ax.hlines(
                per[scenario]['mean'],
                j - width / 2,
                j + width * (len(fused) - 0.5),
                colors='black',
                linestyles='dashed',
                label=f'ceiling ({per[scenario]["variant"]})')
        ax.set_xticks([j + width * (len(fused) - 1) / 2 for j in range(len(subsets))],
                      subsets)
        ax.set_ylabel(board['metric'])
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6, loc='upper center', bbox_to_anchor=(0.5, -0.1), ncol=3)
        ax.set_title(
            f'scenario {scenario!r}: mean ± std over seeds {board["seeds"]}',
            fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_leaderboard(board: dict,
                      out_dir: str,
                      name: str = 'leaderboard',
                      extra: Optional[dict] = None,
                      extra_text: str = '') -> dict:
    """Write ``{name}.md``, ``{name}.json`` (the board and ``extra``) and
    ``{name}.png`` into ``out_dir``.

    Returns:
        dict: ``markdown``, ``json``, ``chart`` (paths; no chart, None, without
        scenarios) and ``text`` (the Markdown).
    """
    clash = sorted(set(extra or {}) & set(board))
    if clash:
        raise ValueError(f'write_leaderboard: extra keys {clash} would replace the '
                         'board\'s own; rename them')
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(
        markdown=osp.join(out_dir, f'{name}.md'),
        json=osp.join(out_dir, f'{name}.json'),
        chart=osp.join(out_dir, f'{name}.png'))
    text = leaderboard_markdown(board, extra_text)
    with open(paths['markdown'], 'w') as f:
        f.write(text)
    with open(paths['json'], 'w') as f:
        json.dump(dict(board, **(extra or {})), f, indent=1)
    if board['scenarios']:
        leaderboard_chart(board, paths['chart'])
    else:  # degradations only: their table says it all
        paths['chart'] = None
    return dict(paths, text=text)


__all__ = [
    'format_stats', 'format_paired', 'format_fraction', 'curve_lines',
    'leaderboard_markdown', 'leaderboard_chart', 'write_leaderboard'
]
