"""Missing-modality robustness: one test run per non-empty subset of modalities.

Two scenarios, reported side by side:

- ``blank``: the missing camera delivers black (``fill='zero'``) or mean frames
  and the model is not told;
- ``missing``: the same frames, and the samples are marked
  ``missing_modalities``, so a missing-modality-aware model (the dual-stream
  backbone's substitute and presence-aware fusion) knows.

Scores per subset, their mean ("average") and the performance collapse rate:

    PCR = mean over the proper subsets S of (score(all) - score(S)) / score(all) * 100

For RGB-T the proper subsets are RGB-only and thermal-only, so PCR is the mean
relative drop, in percent, when one camera is missing (0 = no drop; 100 = total
collapse; negative when a single modality does better than both). It is undefined
(reported as null) when the full-modality score is 0.
"""
import copy
import inspect
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..modality import LayoutLike, ModalityLayout
from ..presence import MISSING_KEY

Subset = Tuple[str, ...]
SCENARIOS = ('blank', 'missing')
# the headline metric of each toolbox's evaluators, used when none is named
PRIMARY_METRICS = ('mIoU', 'coco/bbox_mAP', 'pascal_voc/mAP')


def subset_name(subset: Sequence[str]) -> str:
    return '+'.join(subset)


def check_scenarios(scenarios: Sequence[str]) -> List[str]:
    scenarios = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    bad = [s for s in scenarios if s not in SCENARIOS]
    if not scenarios or bad:
        raise ValueError(f'unknown robustness scenario(s) {bad or scenarios}; '
                         f'expected some of {SCENARIOS}')
    return scenarios


def _carry_missing_key(step: dict) -> dict:
    """A Pack step whose meta_keys include ``missing_modalities``."""
    from mmengine.registry import TRANSFORMS
    keys = step.get('meta_keys')
    if keys is None:  # the Pack class's own default
        # mmdet's and mmseg's transforms live in child registries of the root
        registries = [TRANSFORMS] + list(TRANSFORMS.children.values())
        cls = next((r.get(step['type'])
                    for r in registries if r.get(step['type']) is not None), None)
        if cls is None:
            raise KeyError(f'unknown transform {step["type"]!r} in the test '
                           'pipeline')
        keys = inspect.signature(cls.__init__).parameters['meta_keys'].default
    keys = tuple(keys)
    if MISSING_KEY not in keys:
        step = dict(step, meta_keys=keys + (MISSING_KEY, ))
    return step


def blanking_pipeline(pipeline: List[dict],
                      layout: ModalityLayout,
                      keep: Sequence[str],
                      fill: str,
                      scenario: str = 'blank') -> List[dict]:
    """``pipeline`` with the modalities not in ``keep`` blanked after loading;
    in the ``missing`` scenario also marked missing (and packed)."""
    check_scenarios([scenario])
    blank = [m for m in layout.names if m not in keep]
    pipeline = copy.deepcopy(list(pipeline))
    if not blank:
        return pipeline
    index = next(
        (i for i, t in enumerate(pipeline) if t.get('type') == 'LoadRGBTImagePair'),
        None)
    if index is None:
        raise ValueError(
            'the test pipeline has no LoadRGBTImagePair step to blank '
            f'modalities after; its steps: {[t.get("type") for t in pipeline]}')
    step = dict(
        type='BlankModality',
        blank=blank,
        fill=fill,
        modalities=pipeline[index].get('modalities'))
    if scenario == 'missing':
        step['mark_missing'] = True
        pipeline = [
            _carry_missing_key(t) if str(t.get('type', '')).startswith('Pack') else t
            for t in pipeline
        ]
    pipeline.insert(index + 1, step)
    return pipeline


def summarize(scores: Dict[str, float], layout: ModalityLayout) -> dict:
    """Mean and collapse rate of ``{subset name: score}`` (every subset present)."""
    subsets = [subset_name(s) for s in layout.non_empty_subsets()]
    missing = [s for s in subsets if s not in scores]
    if missing:
        raise KeyError(f'scores missing for subsets {missing}')
    full = scores[subsets[0]]
    drops = [(full - scores[s]) / full * 100 for s in subsets[1:]] if full else []
    return dict(
        scores={s: scores[s]
                for s in subsets},
        mean=sum(scores[s] for s in subsets) / len(subsets),
        collapse_rate=sum(drops) / len(drops) if drops else None)


def markdown_table(results: Dict[str, Dict[str, dict]], metric: str) -> str:
    """One row per variant and scenario: score per subset, mean, collapse rate.

    Args:
        results (dict): ``{scenario: {variant: summary}}`` (see :func:`summarize`).
        metric (str): Metric name for the column headers.
    """
    first = next(iter(results.values()))
    subsets = list(next(iter(first.values()))['scores'])
    head = ['variant', 'scenario'] + [f'{s} {metric}' for s in subsets] + \
        ['mean', 'PCR (%)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    variants = list(dict.fromkeys(v for per in results.values() for v in per))
    for variant in variants:
        for scenario, per_variant in results.items():
            summary = per_variant.get(variant)
            if summary is None:
                continue
            pcr = summary['collapse_rate']
            cells = [variant, scenario]
            cells += [f'{summary["scores"][s]:.3f}' for s in subsets]
            cells += [f'{summary["mean"]:.3f}', 'n/a' if pcr is None else f'{pcr:.1f}']
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


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


def write_report(results: Dict[str, Dict[str, dict]],
                 metric: str,
                 out_dir: str,
                 name: str = 'robustness',
                 extra: Optional[dict] = None) -> dict:
    """Write ``{name}.md``, ``{name}.json`` and ``{name}.png`` into ``out_dir``.

    Args:
        results (dict): ``{scenario: {variant: summary}}``; the JSON keeps it
            under ``scenarios``, one summary per variant under each scenario's
            name.
    """
    check_scenarios(list(results))
    os.makedirs(out_dir, exist_ok=True)
    table = markdown_table(results, metric)
    paths = dict(
        markdown=osp.join(out_dir, f'{name}.md'),
        json=osp.join(out_dir, f'{name}.json'),
        chart=osp.join(out_dir, f'{name}.png'))
    with open(paths['markdown'], 'w') as f:
        f.write(f'# Missing-modality robustness ({metric})\n\n{table}\n'
                'Scenarios: `blank`: the missing camera gives black (or mean) '
                'frames and the model is not told; `missing`: the model is told '
                '(missing_modalities).\nPCR: mean relative drop (%) of the '
                'single-modality scores from the full-modality score.\n')
    with open(paths['json'], 'w') as f:
        json.dump(dict(metric=metric, scenarios=results, **(extra or {})), f, indent=2)
    bar_chart(results, metric, paths['chart'])
    return dict(paths, table=table)


def evaluate_subsets(
        runner,
        layout: LayoutLike = None,
        fill: str = 'zero',
        metric: Optional[str] = None,
        scenario: str = 'blank',
        subsets: Optional[Sequence[Subset]] = None) -> Tuple[str, Dict[str, float]]:
    """Run ``runner``'s test loop once per modality subset.

    The model is built and its checkpoint loaded once; each subset gets a fresh test
    loop whose pipeline blanks the other modalities (``fill``: 'zero' or 'mean'),
    and in the ``missing`` scenario marks them missing.
    Without ``metric``: mIoU, COCO bbox mAP or VOC mAP, whichever the evaluator
    gives, else its first metric.

    Args:
        subsets (list[tuple[str]], optional): The subsets to test; all non-empty
            ones (the full set first) by default.

    Returns:
        tuple: The metric key used and ``{subset name: score}``.
    """
    layout = ModalityLayout.build(layout)
    check_scenarios([scenario])
    loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
    loop_cfg = copy.deepcopy(runner.cfg.test_cfg)
    evaluator_cfg = copy.deepcopy(runner.cfg.test_evaluator)
    scores = {}
    for subset in subsets or layout.non_empty_subsets():
        cfg = copy.deepcopy(loader_cfg)
        cfg['dataset']['pipeline'] = blanking_pipeline(cfg['dataset']['pipeline'],
                                                       layout, subset, fill, scenario)
        runner._test_dataloader = cfg
        runner._test_loop = copy.deepcopy(loop_cfg)
        runner._test_evaluator = copy.deepcopy(evaluator_cfg)
        metrics = runner.test()
        if metric is None:
            metric = next((m for m in PRIMARY_METRICS if m in metrics),
                          next(iter(metrics)))
        if metric not in metrics:
            raise KeyError(f'metric {metric!r} not among the test metrics '
                           f'{sorted(metrics)}')
        scores[subset_name(subset)] = float(metrics[metric])
    return metric, scores


def evaluate_scenarios(
        runner,
        layout: LayoutLike = None,
        fill: str = 'zero',
        metric: Optional[str] = None,
        scenarios: Sequence[str] = SCENARIOS
) -> Tuple[str, Dict[str, Dict[str, float]]]:
    """:func:`evaluate_subsets` in each scenario.

    The full-modality subset is the same run in every scenario, so it is tested
    once and shared.

    Returns:
        tuple: The metric key and ``{scenario: {subset name: score}}``.
    """
    layout = ModalityLayout.build(layout)
    scenarios = check_scenarios(scenarios)
    all_subsets = layout.non_empty_subsets()
    results, full = {}, None
    for scenario in scenarios:
        subsets = all_subsets if full is None else all_subsets[1:]
        metric, scores = evaluate_subsets(runner, layout, fill, metric, scenario,
                                          subsets)
        if full is None:
            full = scores[subset_name(all_subsets[0])]
        results[scenario] = {subset_name(all_subsets[0]): full, **scores}
    return metric, results
