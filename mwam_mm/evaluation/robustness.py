"""Missing-modality robustness: one test run per non-empty subset of modalities.

Scores per subset, their mean ("average") and the performance collapse rate:

    PCR = mean over the proper subsets S of (score(all) - score(S)) / score(all) * 100

For RGB-T the proper subsets are RGB-only and thermal-only, so PCR is the mean
relative drop, in percent, when one camera is missing (0 = no drop; 100 = total
collapse; negative when a single modality does better than both). It is undefined
(reported as null) when the full-modality score is 0.
"""
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..modality import LayoutLike, ModalityLayout

Subset = Tuple[str, ...]
# the headline metric of each toolbox's evaluators, used when none is named
PRIMARY_METRICS = ('mIoU', 'coco/bbox_mAP', 'pascal_voc/mAP')


def subset_name(subset: Sequence[str]) -> str:
    return '+'.join(subset)


def blanking_pipeline(pipeline: List[dict], layout: ModalityLayout,
                      keep: Sequence[str], fill: str) -> List[dict]:
    """``pipeline`` with the modalities not in ``keep`` blanked after loading."""
    blank = [m for m in layout.names if m not in keep]
    pipeline = copy.deepcopy(list(pipeline))
    if not blank:
        return pipeline
    index = next((i for i, t in enumerate(pipeline)
                  if t.get('type') == 'LoadRGBTImagePair'), None)
    if index is None:
        raise ValueError('the test pipeline has no LoadRGBTImagePair step to blank '
                         f'modalities after; its steps: {[t.get("type") for t in pipeline]}')
    step = dict(type='BlankModality', blank=blank, fill=fill,
                modalities=pipeline[index].get('modalities'))
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
        scores={s: scores[s] for s in subsets},
        mean=sum(scores[s] for s in subsets) / len(subsets),
        collapse_rate=sum(drops) / len(drops) if drops else None)


def markdown_table(summaries: Dict[str, dict], metric: str) -> str:
    """One row per variant: score per subset, mean, collapse rate."""
    subsets = list(next(iter(summaries.values()))['scores'])
    head = ['variant'] + [f'{s} {metric}' for s in subsets] + ['mean', 'PCR (%)']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for variant, summary in summaries.items():
        pcr = summary['collapse_rate']
        cells = [variant] + [f'{summary["scores"][s]:.3f}' for s in subsets]
        cells += [f'{summary["mean"]:.3f}', 'n/a' if pcr is None else f'{pcr:.1f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def bar_chart(summaries: Dict[str, dict], metric: str, path: str) -> str:
    """Bars per subset per variant, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    subsets = list(next(iter(summaries.values()))['scores'])
    width = 0.8 / len(summaries)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(subsets), 3.6))
    for i, (variant, summary) in enumerate(summaries.items()):
        xs = [j + i * width for j in range(len(subsets))]
        bars = ax.bar(xs, [summary['scores'][s] for s in subsets], width,
                      label=variant)
        ax.bar_label(bars, fmt='%.2f', fontsize=7)
    ax.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(subsets))],
                  subsets)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1.05 * max(1e-6, max(max(s['scores'].values())
                                       for s in summaries.values())))
    ax.legend(fontsize=8)
    ax.set_title('score per available modality subset')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(summaries: Dict[str, dict], metric: str, out_dir: str,
                 name: str = 'robustness', extra: Optional[dict] = None) -> dict:
    """Write ``{name}.md``, ``{name}.json`` and ``{name}.png`` into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    table = markdown_table(summaries, metric)
    paths = dict(markdown=osp.join(out_dir, f'{name}.md'),
                 json=osp.join(out_dir, f'{name}.json'),
                 chart=osp.join(out_dir, f'{name}.png'))
    with open(paths['markdown'], 'w') as f:
        f.write(f'# Missing-modality robustness ({metric})\n\n{table}\n'
                'PCR: mean relative drop (%) of the single-modality scores from the '
                'full-modality score.\n')
    with open(paths['json'], 'w') as f:
        json.dump(dict(metric=metric, variants=summaries, **(extra or {})), f,
                  indent=2)
    bar_chart(summaries, metric, paths['chart'])
    return dict(paths, table=table)


def evaluate_subsets(runner, layout: LayoutLike = None, fill: str = 'zero',
                     metric: Optional[str] = None) -> Tuple[str, Dict[str, float]]:
    """Run ``runner``'s test loop once per modality subset.

    The model is built and its checkpoint loaded once; each subset gets a fresh test
    loop whose pipeline blanks the other modalities (``fill``: 'zero' or 'mean').
    Without ``metric``: mIoU, COCO bbox mAP or VOC mAP, whichever the evaluator
    gives, else its first metric.

    Returns:
        tuple: The metric key used and ``{subset name: score}``.
    """
    layout = ModalityLayout.build(layout)
    loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
    loop_cfg = copy.deepcopy(runner.cfg.test_cfg)
    evaluator_cfg = copy.deepcopy(runner.cfg.test_evaluator)
    scores = {}
    for subset in layout.non_empty_subsets():
        cfg = copy.deepcopy(loader_cfg)
        cfg['dataset']['pipeline'] = blanking_pipeline(
            cfg['dataset']['pipeline'], layout, subset, fill)
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
