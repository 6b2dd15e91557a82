"""Missing-modality robustness: one test run per non-empty subset of modalities.

Two scenarios, reported side by side:

- ``blank``: the missing camera delivers black (``fill='zero'``) or mean frames
  and the model is not told;
- ``missing``: the same frames, and the samples are marked
  ``missing_modalities``, so a missing-modality-aware model (the dual-stream
  backbone's substitute and presence-aware fusion) knows;
- ``blank-detected`` (on request): the frames of ``blank``, with the data
  preprocessor's dead-camera check on (its config's ``dead_camera``, else
  the default tolerance): what a deployed model does when nobody tells it.
  ``blank`` and ``missing`` run with the check off, so ``blank`` stays "not
  told, not noticed".

Scores per subset, their mean ("average") and the performance collapse rate:

    PCR = mean over the proper subsets S of (score(all) - score(S)) / score(all) * 100

For RGB-T the proper subsets are RGB-only and thermal-only, so PCR is the mean
relative drop, in percent, when one camera is missing (0 = no drop; 100 = total
collapse; negative when a single modality does better than both). It is undefined
(reported as null) when the full-modality score is 0. For a metric whose lower
values are better (a miss rate, :func:`~mwam_mm.evaluation.lower_is_better`) it is
the mean relative rise, ``(score(S) - score(all)) / score(all) * 100``: positive
when a camera's loss hurts, either way.

:func:`evaluate_robustness` adds, from the same test runs, scores per named split
of the test samples (day / night where the dataset lists them, see
:func:`find_day_night_splits` and :class:`SplitMetric`), and the degradation suite
of :mod:`mwam_mm.evaluation.degradations` (every modality present, one degraded).
The splits are :mod:`mwam_mm.evaluation.splits`, the report writers
:mod:`mwam_mm.evaluation.robustness_report`.
"""
import contextlib
import copy
import inspect
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.registry import LOOPS
from mmengine.runner import TestLoop

from ..modality import LayoutLike, ModalityLayout
from ..presence import MISSING_KEY
from .degradations import degradation_pipeline, loader_index, summarize_degradations
from .splits import find_day_night_splits, wrap_evaluator
from .statistics import lower_is_better

Subset = Tuple[str, ...]
Log = Callable[[str], None]
SCENARIOS = ('blank', 'missing')  # the default ones
ALL_SCENARIOS = SCENARIOS + ('blank-detected', )
# the headline metric of each toolbox's evaluators, used when none is named
PRIMARY_METRICS = ('mIoU', 'coco/bbox_mAP', 'pascal_voc/mAP')


def subset_name(subset: Sequence[str]) -> str:
    return '+'.join(subset)


def check_scenarios(scenarios: Sequence[str]) -> List[str]:
    scenarios = [scenarios] if isinstance(scenarios, str) else list(scenarios)
    bad = [s for s in scenarios if s not in ALL_SCENARIOS]
    if not scenarios or bad:
        raise ValueError(f'unknown robustness scenario(s) {bad or scenarios}; '
                         f'expected some of {ALL_SCENARIOS}')
    return scenarios


def _preprocessor(runner):
    model = runner.model
    model = getattr(model, 'module', model)  # DDP
    return getattr(model, 'data_preprocessor', None)


@contextlib.contextmanager
def dead_camera_check(runner, scenario: str):
    """The data preprocessor's dead-camera check on for ``blank-detected``,
    off for the other scenarios (restored afterwards)."""
    preprocessor = _preprocessor(runner)
    if preprocessor is None or not hasattr(preprocessor, 'dead_camera'):
        if scenario == 'blank-detected':
            raise ValueError(
                "robustness: the scenario 'blank-detected' needs an RGB-T data "
                'preprocessor (RGBTDetDataPreprocessor, RGBTSegDataPreprocessor), '
                f'the model has {type(preprocessor).__name__}')
        yield
        return
    configured = preprocessor.dead_camera
    if scenario == 'blank-detected':
        from ..models.data_preprocessors import DeadCameraCheck
        preprocessor.dead_camera = configured or DeadCameraCheck(
            preprocessor.layout, owner='robustness (blank-detected)')
    else:
        preprocessor.dead_camera = None
    try:
        yield
    finally:
        preprocessor.dead_camera = configured


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
    if scenario == 'missing':  # blank-detected: as blank, the model looks
        step['mark_missing'] = True
        pipeline = [
            _carry_missing_key(t) if str(t.get('type', '')).startswith('Pack') else t
            for t in pipeline
        ]
    pipeline.insert(index + 1, step)
    return pipeline


def collapse_rate(scores: Dict[str, float],
                  subsets: Sequence[str],
                  lower_better: bool = False) -> Optional[float]:
    """PCR (%): the mean relative drop of the scores of ``subsets[1:]`` from that
    of ``subsets[0]`` (the full set), or with ``lower_better`` (a miss rate) their
    mean relative rise; None when that is 0 or alone."""
    full = scores[subsets[0]]
    sign = -1.0 if lower_better else 1.0
    drops = [sign * (full - scores[s]) / full * 100
             for s in subsets[1:]] if full else []
    return sum(drops) / len(drops) if drops else None


def summarize(scores: Dict[str, float],
              layout: ModalityLayout,
              lower_better: bool = False) -> dict:
    """Mean and collapse rate of ``{subset name: score}`` (every subset present;
    ``lower_better`` for a miss rate, :func:`collapse_rate`)."""
    subsets = [subset_name(s) for s in layout.non_empty_subsets()]
    missing = [s for s in subsets if s not in scores]
    if missing:
        raise KeyError(f'scores missing for subsets {missing}')
    return dict(
        scores={s: scores[s]
                for s in subsets},
        mean=sum(scores[s] for s in subsets) / len(subsets),
        collapse_rate=collapse_rate(scores, subsets, lower_better))


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
            scores[subset_name(subset)], _ = _test_subset(test, layout, subset, fill,
                                                          scenario)
    return test.metric, scores


def _test_subset(test: _TestRunner, layout: ModalityLayout, subset: Subset, fill: str,
                 scenario: str) -> Tuple[float, dict]:
    """One test run with only ``subset`` present: the others blanked (and marked,
    in ``missing``), the dead-camera check as the scenario says."""
    check = dead_camera_check(test.runner, scenario) \
        if tuple(subset) != tuple(layout.names) else contextlib.nullcontext()
    with check:
        return test(lambda p: blanking_pipeline(p, layout, subset, fill, scenario))


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
                score, by_split = _test_subset(test, layout, subset, fill, scenario)
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
        lower_better = lower_is_better(test.metric)
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
            summary=summarize_degradations(clean, scores, lower_better),
            splits={
                s:
                dict(
                    clean=clean_split.get(s),
                    scores=split_scores[s],
                    summary=summarize_degradations(
                        clean_split.get(s), split_scores[s], lower_better))
                for s in test.splits if s in clean_split
            })
    return out
