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

:func:`evaluate_robustness` adds, from the same test runs, scores per named split
of the test samples (day / night where the dataset lists them, see
:func:`find_day_night_splits` and :class:`SplitMetric`), and the degradation suite
of :mod:`mwam_mm.evaluation.degradations` (every modality present, one degraded).
"""
import contextlib
import copy
import inspect
import json
import os
import os.path as osp
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.evaluator import BaseMetric
from mmengine.fileio import list_from_file
from mmengine.registry import LOOPS, METRICS
from mmengine.runner import TestLoop

from ..modality import LayoutLike, ModalityLayout
from ..presence import MISSING_KEY
from .degradations import degradation_pipeline, loader_index, summarize_degradations

Subset = Tuple[str, ...]
Log = Callable[[str], None]
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
    index = loader_index(pipeline, 'blank modalities')
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


def collapse_rate(scores: Dict[str, float], subsets: Sequence[str]) -> Optional[float]:
    """PCR (%): the mean relative drop of the scores of ``subsets[1:]`` from that
    of ``subsets[0]`` (the full set); None when that is 0 or alone."""
    full = scores[subsets[0]]
    drops = [(full - scores[s]) / full * 100 for s in subsets[1:]] if full else []
    return sum(drops) / len(drops) if drops else None


def summarize(scores: Dict[str, float], layout: ModalityLayout) -> dict:
    """Mean and collapse rate of ``{subset name: score}`` (every subset present)."""
    subsets = [subset_name(s) for s in layout.non_empty_subsets()]
    missing = [s for s in subsets if s not in scores]
    if missing:
        raise KeyError(f'scores missing for subsets {missing}')
    return dict(
        scores={s: scores[s]
                for s in subsets},
        mean=sum(scores[s] for s in subsets) / len(subsets),
        collapse_rate=collapse_rate(scores, subsets))


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


# --------------------------------------------------------------------------------
# splits of the test samples (day / night)

# sample keys that name it, matched against the split lists (the id as it is, the
# files by their name without folder and suffix)
_SAMPLE_ID_KEYS = ('img_id', )
_SAMPLE_FILE_KEYS = ('img_path', 'stacked_path', 'seg_map_path', 'thermal_path')


def sample_names(sample: dict) -> set:
    """The names a test sample answers to in a split list: its ``img_id`` and the
    stems of its files (``img_path``, ``stacked_path``, ...)."""
    names = {str(sample[k]) for k in _SAMPLE_ID_KEYS if sample.get(k) is not None}
    names |= {
        osp.splitext(osp.basename(str(sample[k])))[0]
        for k in _SAMPLE_FILE_KEYS if sample.get(k)
    }
    return names


def _read_list(value, owner: str) -> List[str]:
    if isinstance(value, str):
        if not osp.isfile(value):
            raise FileNotFoundError(f'{owner}: split list {value} not found')
        value = list_from_file(value)
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise TypeError(f'{owner}: a split is a list of sample names or the path of '
                        f'a file with one per line, got {type(value).__name__}')
    return [osp.splitext(str(v).strip())[0] for v in value if str(v).strip()]


@METRICS.register_module()
class SplitMetric(BaseMetric):
    """Any metric, computed on all test samples and on named splits of them.

    Wraps ``metric``: each batch goes to it, and each result it stores is
    tagged with its sample's names (:func:`sample_names`). The returned metrics
    are the wrapped metric's keys (``pascal_voc/mAP``) for all samples and
    ``{split}/{key}`` (``night/pascal_voc/mAP``) for each split with samples; one
    test pass gives all. Needs a metric that stores one result per sample
    (mmdet's VOCMetric and CocoMetric, mmseg's IoUMetric). mmdet's CocoMetric
    keeps the ground truth it built from the first call: it is reset between
    calls; a CocoMetric given an ``ann_file`` cannot be split (it scores every
    image of the file), which is refused.

    Args:
        metric (dict): The wrapped metric's config.
        splits (dict): ``{name: list of sample names, or the path of a file with
            one per line}``. A sample belongs to a split when its ``img_id`` or
            the name of one of its files (no folder, no suffix) is listed.
        collect_device (str): See ``BaseMetric``.
        collect_dir (str, optional): See ``BaseMetric``.
    """

    def __init__(self,
                 metric: dict,
                 splits: Dict[str, Union[str, Sequence[str]]],
                 collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None):
        # a prefix keeps BaseMetric from warning; the keys are prefixed here
        super().__init__(collect_device, prefix='split', collect_dir=collect_dir)
        self.prefix = None
        if not isinstance(splits, dict) or not splits:
            raise ValueError('SplitMetric: splits must be a non-empty dict '
                             f'(name: sample names or list file), got {splits!r}')
        self.splits = {
            str(name): frozenset(_read_list(value, f'SplitMetric split {name!r}'))
            for name, value in splits.items()
        }
        self.metric = METRICS.build(metric)
        state = getattr(self.metric, '_coco_api', 'absent')
        if state not in ('absent', None):
            raise ValueError(
                f'SplitMetric: {type(self.metric).__name__} was given an ann_file; '
                'it then scores every image of that file, so it cannot be split. '
                'Drop its ann_file (it builds the ground truth from the samples)')
        self._resets_state = state is None

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        self._dataset_meta = dataset_meta
        self.metric.dataset_meta = dataset_meta

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        before = len(self.metric.results)
        self.metric.process(data_batch, data_samples)
        new = self.metric.results[before:]
        del self.metric.results[before:]
        if len(new) != len(data_samples):
            raise RuntimeError(
                f'SplitMetric: {type(self.metric).__name__} stored {len(new)} '
                f'results for a batch of {len(data_samples)} samples; only a metric '
                'that stores one result per sample can be split')
        for sample, result in zip(data_samples, new):
            self.results.append((sorted(sample_names(sample)), result))

    def _compute(self, results: list) -> dict:
        if self._resets_state:  # CocoMetric: ground truth rebuilt for these
            for key in ('_coco_api', 'img_ids', 'cat_ids'):
                setattr(self.metric, key, None)
        metrics = self.metric.compute_metrics(list(results))
        prefix = self.metric.prefix
        return {f'{prefix}/{k}' if prefix else k: v for k, v in metrics.items()}

    def compute_metrics(self, results: list) -> dict:
        out = self._compute([r for _, r in results])
        for name, members in self.splits.items():
            part = [r for names, r in results if members.intersection(names)]
            if not part:
                warnings.warn(f'SplitMetric: no test sample is in split {name!r}; '
                              'it has no scores')
                continue
            out.update({f'{name}/{k}': v for k, v in self._compute(part).items()})
        return out


def _stems_of_folder(folder: str, suffix: str) -> List[str]:
    if not osp.isdir(folder):
        return []
    return sorted(f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix))


def find_day_night_splits(dataset: dict) -> Optional[Dict[str, List[str]]]:
    """Day and night lists of a test dataset config, where the dataset has them.

    Looked for in this order:

    - ``<split>_day.txt`` and ``<split>_night.txt`` next to the dataset's
      ``ann_file`` (MFNet's ``test_day.txt`` / ``test_night.txt``);
    - ``night_<split>.txt`` in ``data_root``, ``<split>`` the last folder of
      ``data_prefix['img']`` (the synthetic data: ``night_test.txt``); day is the
      rest of the split (the ``ann_file``'s names, or the image folder's);
    - an ``MFNetDataset`` whose names all end in ``D`` or ``N`` (MFNet's own
      naming: ``00001D``, ``01234N``).

    KAIST is not listed here: ``KAISTMissRate`` reports day and night itself.

    Args:
        dataset (dict): The test dataset's config (``data_root``, ``ann_file``,
            ``data_prefix``, ``type``).

    Returns:
        dict | None: ``{'day': [names], 'night': [names]}``, or None.
    """
    root = dataset.get('data_root') or ''
    ann_file = dataset.get('ann_file') or ''
    if ann_file and not osp.isabs(ann_file):
        ann_file = osp.join(root, ann_file)
    prefix = dataset.get('data_prefix') or {}
    if ann_file:
        base = osp.splitext(ann_file)[0]
        day, night = f'{base}_day.txt', f'{base}_night.txt'
        if osp.isfile(day) and osp.isfile(night):
            return dict(
                day=_read_list(day, 'day list'), night=_read_list(night, 'night list'))
    img = prefix.get('img') or prefix.get('img_path') or ''
    split = osp.basename(osp.normpath(img)) if img else ''
    night_file = osp.join(root, f'night_{split}.txt')
    if split and osp.isfile(night_file):
        if ann_file and osp.isfile(ann_file):
            names = _read_list(ann_file, 'split file')
        else:
            names = _stems_of_folder(
                osp.join(root, img), dataset.get('img_suffix', '.jpg'))
        night = set(_read_list(night_file, 'night list'))
        return dict(
            day=[n for n in names if n not in night],
            night=[n for n in names if n in night])
    if str(dataset.get('type', '')).split('.')[-1] == 'MFNetDataset' and \
            ann_file and osp.isfile(ann_file):
        names = _read_list(ann_file, 'split file')
        if names and all(n[-1:] in ('D', 'N') for n in names):
            return dict(
                day=[n for n in names if n.endswith('D')],
                night=[n for n in names if n.endswith('N')])
    return None


def wrap_evaluator(evaluator, splits: Optional[dict]):
    """The evaluator config with each metric wrapped in :class:`SplitMetric`."""
    if not splits:
        return copy.deepcopy(evaluator)
    if isinstance(evaluator, (list, tuple)):
        return [wrap_evaluator(m, splits) for m in evaluator]
    evaluator = copy.deepcopy(dict(evaluator))
    if str(evaluator.get('type', '')).split('.')[-1] == 'Evaluator':
        evaluator['metrics'] = wrap_evaluator(evaluator['metrics'], splits)
        return evaluator
    return dict(type='SplitMetric', metric=evaluator, splits=dict(splits))


# --------------------------------------------------------------------------------
# test runs


def _pick_metric(metrics: dict, metric: Optional[str], splits) -> str:
    own = [k for k in metrics if not any(k.startswith(f'{s}/') for s in splits or ())]
    if metric is None:
        metric = next((m for m in PRIMARY_METRICS if m in own), own[0])
    if metric not in metrics:
        raise KeyError(f'metric {metric!r} not among the test metrics '
                       f'{sorted(own)}')
    return metric


class _TestRunner:
    """Runs test loops of ``runner`` with edited pipelines (the model is built and
    its checkpoint loaded once) and reads one metric, overall and per split.

    Only mmengine's public Runner API is used: ``runner.test()`` runs the loop of
    the runner's own config, so each run here builds a loop of its own from
    copies of the config's ``test_dataloader``, ``test_cfg`` and
    ``test_evaluator``, as ``Runner.build_test_loop`` builds the runner's: the
    loop ``test_cfg`` names in ``LOOPS``, else ``TestLoop``, given the config
    dicts, so that the loop builds the loader with the runner's seed and the
    evaluator itself. The loop calls the test hooks (``before_test`` to
    ``after_test``); :meth:`session` does what ``runner.test()`` adds around
    its loop.
    """

    def __init__(self, runner, metric: Optional[str], splits: Optional[dict]):
        self.runner = runner
        self.metric = metric
        self.splits = dict(splits) if splits else {}
        # copies: building a loader or an evaluator may write into its config
        # (``Runner.build_evaluator`` sets a missing ``type``), and the runner's
        # config must stay as it was for every run and after them
        self.loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
        self.loop_cfg = copy.deepcopy(runner.cfg.test_cfg)
        self.evaluator_cfg = wrap_evaluator(runner.cfg.test_evaluator, self.splits)

    @contextlib.contextmanager
    def session(self):
        """What ``runner.test()`` does around its loop, once for all the runs.

        The ``before_run`` hooks and the checkpoint (``load_from``; mmengine
        loads it once per runner) before the first run, the ``after_run`` hooks
        after the last one, when every run succeeded (as ``runner.test()``, no
        ``after_run`` after a failure). Once, not per run: the config does not
        change between the runs, and ``RuntimeInfoHook.before_run`` formats its
        text (yapf), which costs about as much as a test run on small data.

        The runner's own test loop is built first, as ``runner.test()`` does:
        mmengine's timer and logger hooks read ``runner.test_dataloader`` for
        the length of the test (ETA, log lines), and it has the same samples
        as the loader of every run here (only the pipeline differs).
        """
        runner = self.runner
        if self.loop_cfg is None or runner.test_loop is None:
            raise RuntimeError('robustness: the runner has no test loop; build it '
                               'from a config with test_dataloader, test_cfg and '
                               'test_evaluator')
        runner.call_hook('before_run')
        # checkpoint hooks (CheckpointMatchHook) run after before_run, as in
        # runner.test()
        runner.load_or_resume()
        yield
        runner.call_hook('after_run')

    def build_loop(self, loader_cfg: dict):
        """A test loop on ``loader_cfg`` with a fresh copy of the evaluator and
        loop configs (``Runner.build_test_loop`` with another loader)."""
        loop_cfg = copy.deepcopy(self.loop_cfg)
        parts = dict(
            runner=self.runner,
            dataloader=loader_cfg,
            evaluator=copy.deepcopy(self.evaluator_cfg))
        if 'type' in loop_cfg:
            return LOOPS.build(loop_cfg, default_args=parts)
        return TestLoop(**loop_cfg, **parts)

    def __call__(self, edit: Callable[[list], list]) -> Tuple[float, dict]:
        """Test once with ``edit(pipeline)``; the score and ``{split: score}``."""
        cfg = copy.deepcopy(self.loader_cfg)
        cfg['dataset']['pipeline'] = edit(cfg['dataset']['pipeline'])
        metrics = self.build_loop(cfg).run()
        self.metric = _pick_metric(metrics, self.metric, self.splits)
        per_split = {
            s: float(metrics[f'{s}/{self.metric}'])
            for s in self.splits if f'{s}/{self.metric}' in metrics
        }
        return float(metrics[self.metric]), per_split


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
    test = _TestRunner(runner, metric, None)
    scores = {}
    with test.session():
        for subset in subsets or layout.non_empty_subsets():
            scores[subset_name(subset)], _ = test(
                lambda p, s=subset: blanking_pipeline(p, layout, s, fill, scenario))
    return test.metric, scores


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
    result = evaluate_robustness(runner, layout, fill, metric, scenarios, splits=None)
    return result['metric'], result['scenarios']


def evaluate_robustness(runner,
                        layout: LayoutLike = None,
                        fill: str = 'zero',
                        metric: Optional[str] = None,
                        scenarios: Sequence[str] = SCENARIOS,
                        subsets: Optional[Sequence[Subset]] = None,
                        splits: Union[str, None, dict] = 'auto',
                        degradations: Optional[Sequence[Tuple[str, str, int]]] = None,
                        seed: int = 0,
                        same_in_all_scenarios: bool = False,
                        log: Optional[Log] = None) -> dict:
    """Missing-modality scenarios, splits and degradations of a built runner.

    One test run per (scenario, subset) and per degradation; the full-modality
    run is shared by every scenario and is the degradations' clean score. Each
    run also gives the per-split scores (one pass, :class:`SplitMetric`).

    Args:
        runner: An mmengine Runner with the model (trained, or with
            ``load_from``).
        layout: The modality layout; None for the default.
        fill (str): 'zero' or 'mean' (what a missing modality becomes).
        metric (str, optional): Metric key; default as :func:`evaluate_subsets`.
        scenarios (Sequence[str]): Some of :data:`SCENARIOS`; may be empty.
        subsets (list[tuple[str]], optional): The subsets to test (default all
            non-empty ones, the full set first). The full set, when listed, is
            tested once for all scenarios.
        splits: ``'auto'`` (default): :func:`find_day_night_splits` of the test
            dataset; None: no splits; or ``{name: names or list file}``.
        degradations (list[tuple], optional): ``(degradation, modality,
            severity)`` triples (:func:`degradation_plan`), tested with every
            modality present.
        seed (int): Seed of the degradations' per-image draws.
        same_in_all_scenarios (bool): Test in the first scenario only and give
            its scores for every scenario (a model that uses only the modalities
            of the subsets, for which blank and missing are the same run).
        log (callable, optional): Called with a progress message per test run.

    Returns:
        dict: ``metric``; ``scenarios: {scenario: {subset: score}}``;
        ``splits: {split: {scenario: {subset: score}}}`` (empty without
        splits); with degradations, ``degradations: {clean, scores:
        {degradation: {modality: {severity (str): score}}}, summary (see
        summarize_degradations), splits: {split: {clean, scores, summary}}}``.
    """
    layout = ModalityLayout.build(layout)
    scenarios = check_scenarios(scenarios) if len(scenarios) else []
    if splits == 'auto':
        splits = find_day_night_splits(runner.cfg.test_dataloader['dataset'])
    test = _TestRunner(runner, metric, splits)
    with test.session():
        out = _evaluate(test, layout, fill, scenarios, subsets, degradations, seed,
                        same_in_all_scenarios, log or (lambda message: None))
    out['metric'] = test.metric
    return out


def _evaluate(test: _TestRunner, layout: ModalityLayout, fill: str,
              scenarios: List[str], subsets: Optional[Sequence[Subset]], degradations,
              seed: int, same_in_all_scenarios: bool, say: Log) -> dict:
    """The runs of :func:`evaluate_robustness` (see there)."""
    subsets = [tuple(s) for s in (subsets or layout.non_empty_subsets())]
    full = tuple(layout.names)

    out = dict(scenarios={}, splits={s: {} for s in test.splits})
    shared = None  # the full-modality run: (score, per split)
    for i, scenario in enumerate(scenarios):
        if same_in_all_scenarios and i > 0:
            out['scenarios'][scenario] = dict(out['scenarios'][scenarios[0]])
            for split in test.splits:
                out['splits'][split][scenario] = dict(out['splits'][split].get(
                    scenarios[0], {}))
            continue
        scores, per_split = {}, {s: {} for s in test.splits}
        for subset in subsets:
            name = subset_name(subset)
            if subset == full and shared is not None:
                score, by_split = shared
            else:
                say(f'testing {name} ({scenario})')
                score, by_split = test(lambda p, s=subset, c=scenario:
                                       blanking_pipeline(p, layout, s, fill, c))
                if subset == full:
                    shared = (score, by_split)
            scores[name] = score
            for split, value in by_split.items():
                per_split[split][name] = value
        out['scenarios'][scenario] = scores
        for split in test.splits:
            out['splits'][split][scenario] = per_split[split]

    if degradations:
        if shared is None:
            say('testing the clean images')
            shared = test(lambda p: p)  # the runner tests a copy
        clean, clean_split = shared
        scores = {}
        split_scores = {s: {} for s in test.splits}
        for name, modality, severity in degradations:
            say(f'testing {name} on {modality}, severity {severity}')
            score, by_split = test(lambda p, d=(name, modality, severity):
                                   degradation_pipeline(p, *d, seed=seed))
            scores.setdefault(name, {}).setdefault(modality, {})[str(severity)] = score
            for split, value in by_split.items():
                split_scores[split].setdefault(name,
                                               {}).setdefault(modality,
                                                              {})[str(severity)] = value
        out['degradations'] = dict(
            clean=clean,
            scores=scores,
            summary=summarize_degradations(clean, scores),
            splits={
                s:
                dict(
                    clean=clean_split.get(s),
                    scores=split_scores[s],
                    summary=summarize_degradations(clean_split.get(s), split_scores[s]))
                for s in test.splits if s in clean_split
            })
    return out
