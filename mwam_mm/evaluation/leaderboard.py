"""The robustness leaderboard: every method variant, several seeds, two ceilings.

The single source of truth of the variant names (:data:`VARIANTS`): a config
family is ``<base>.py`` (the baseline) and ``<base>_<suffix>.py`` next to it, one
file per variant. Around it, what the benchmark (``benchmarks/
robustness_leaderboard.py``) and the demo share:

- the synthetic data and the run's options (:func:`ensure_synthetic_data`,
  :func:`data_root_options`, :func:`apply_schedule`, :class:`RunOptions`);
- one run (:func:`run_variant`: train one variant with one seed, then test it in
  every robustness scenario, per split and, if asked, under degradations);
- the statistics over seeds (:func:`seed_statistics`, :func:`compare`,
  :func:`aggregate`) and the writers (:func:`write_leaderboard`).

Statistics: the mean and the sample standard deviation (n - 1) over seeds, the
standard error ``se = std / sqrt(n)``; a variant's score is marked as differing
from the baseline's (same subset and scenario) when

    |mean_v - mean_base| > 2 * sqrt(se_v ** 2 + se_base ** 2)

(two standard errors of the difference of two independent means; with one seed
there is no standard error and nothing is marked). A single-camera score's
fraction of its ceiling is the ratio of the two means over seeds.

Unimodal ceilings (variants ``unimodal-rgb``, ``unimodal-thermal``: the same model
with ``model.backbone.ignore_modalities`` set) use one camera in training and test.
They are tested on their own modality only: a subset without it leaves such a
model no input, and the other camera is ignored either way, so ``blank`` and
``missing`` are the same run: it is run once and its score is given for both
scenarios.
"""
import hashlib
import json
import logging
import math
import os
import os.path as osp
import shutil
import statistics
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from ..datasets.synthetic import synthetic_meta
from ..modality import ModalityLayout, non_empty_subsets
from .robustness import (SCENARIOS, check_scenarios, collapse_rate, evaluate_robustness,
                         subset_name, summarize)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYNTHETIC_CONFIG = osp.join(ROOT, 'configs', 'detection',
                            'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py')

#: variant name -> config suffix (``<base><suffix>.py``), in report order
VARIANTS = {
    'baseline': '',
    'moddrop': '_moddrop',
    'mwam': '_mwam',
    'moddrop-mwam': '_moddrop-mwam',
    'ogm-ge': '_ogm-ge',
    'rsc-md': '_rsc-md',
    'btw': '_btw',
    'cmpt': '_cmpt',
    'rsc-view': '_rsc-view',
    'unimodal-rgb': '_unimodal-rgb',
    'unimodal-thermal': '_unimodal-thermal',
    # analysis variants of the synthetic family
    'mwam-update': '_mwam-update',
    'moddrop-input': '_moddrop-input',
    'mwam-robust': '_mwam-robust',
    # controls of MWAM (benchmarks/mwam_ablation.py)
    'moddrop-constk': '_moddrop-constk',
    'moddrop-mwam-swap': '_moddrop-mwam-swap',
}
BASELINE = 'baseline'
#: the unimodal ceilings: variant -> the one modality it uses
CEILINGS = {'unimodal-rgb': 'rgb', 'unimodal-thermal': 'thermal'}
ANALYSIS_VARIANTS = ('mwam-update', 'moddrop-input', 'mwam-robust', 'moddrop-constk',
                     'moddrop-mwam-swap')
#: the synthetic generator's defaults (tools/make_synthetic_rgbt.py), the demo's
SYNTHETIC_DEFAULTS = dict(
    seed=0, num_train=400, num_test=100, width=160, height=128, night_fraction=0.5)
HISTORY_PREFIXES = ('train/mwam_', 'train/branch_k_', 'train/grad_norm_')
TAG = '[leaderboard]'
# the files a run keeps in its work dir: its setup (written before training) and
# its result (written after testing)
SETUP_FILE = 'setup.json'
RESULT_FILE = 'result.json'

# --------------------------------------------------------------------------------
# variants and their configs


def _existing(path: str) -> str:
    """``path`` as given, else relative to the repository root; absolute."""
    for candidate in (path, osp.join(ROOT, path)):
        if osp.isfile(candidate):
            return osp.abspath(candidate)
    raise FileNotFoundError(f'config file {path} not found (also not under {ROOT})')


def check_variants(names: Sequence[str]) -> List[str]:
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise KeyError(f'unknown variant(s) {unknown}; known: {list(VARIANTS)}')
    return names


def _family_path(base: str, variant: str) -> str:
    base = _existing(base)
    return base[:-len('.py')] + VARIANTS[variant] + '.py'


def available_variants(base: str) -> List[str]:
    """The variants (in :data:`VARIANTS` order) whose config exists next to
    ``base``."""
    return [v for v in VARIANTS if osp.isfile(_family_path(base, v))]


def variant_config(base: str, variant: str) -> str:
    """The config file of ``variant`` in the family of ``base``.

    Args:
        base (str): The family's base config (``<base>.py``), as a path or
            relative to the repository root.
        variant (str): A name of :data:`VARIANTS`.

    Raises:
        KeyError: An unknown variant name (the known ones are listed).
        FileNotFoundError: No such file; lists the variants this base has.
    """
    check_variants([variant])
    path = _family_path(base, variant)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'no config for variant {variant!r} of {osp.basename(base)}: {path} does '
            f'not exist; the variants with a config for this base: '
            f'{available_variants(base)}')
    return path


def ceiling_modality(variant: str) -> Optional[str]:
    """The modality a ceiling variant uses (None for the other variants)."""
    return CEILINGS.get(variant)


def is_synthetic_config(path: str) -> bool:
    """The config trains on the synthetic data (its file name says so)."""
    return 'synthetic' in osp.basename(path)


# --------------------------------------------------------------------------------
# data and options


def default_synthetic_root(**params) -> str:
    """``data/synthetic_rgbt`` for the defaults; a folder named by the parameters
    otherwise (so held-out variants do not overwrite the demo's data)."""
    p = dict(SYNTHETIC_DEFAULTS, **params)
    if p == SYNTHETIC_DEFAULTS:
        return osp.join('data', 'synthetic_rgbt')
    return osp.join(
        'data', f'synthetic_rgbt_seed{p["seed"]}_night{float(p["night_fraction"])}_'
        f'{p["width"]}x{p["height"]}_{p["num_train"]}-{p["num_test"]}')


def ensure_synthetic_data(root: str,
                          seed: int = 0,
                          num_train: int = 400,
                          num_test: int = 100,
                          width: int = 160,
                          height: int = 128,
                          night_fraction: float = 0.5,
                          log: Callable[[str], None] = print) -> str:
    """Make the synthetic dataset in ``root`` unless it is there with these
    parameters (its ``meta.txt``). A synthetic dataset of other parameters is
    replaced; a folder with other content is refused.

    Returns:
        str: ``root``.
    """
    from ..datasets.synthetic import make_synthetic_rgbt
    params = dict(
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        width=width,
        height=height,
        night_fraction=float(night_fraction))
    wanted = synthetic_meta(**params)
    meta = osp.join(root, 'meta.txt')
    if osp.isfile(meta) and open(meta).read().strip() == wanted:
        log(f'synthetic data: {root} (present)')
        return root
    if osp.exists(root) and os.listdir(root):
        if not osp.isfile(meta):
            raise FileExistsError(f'{root} exists and is not a synthetic dataset made '
                                  'by this code (no meta.txt); give another data root')
        shutil.rmtree(root)
    t0 = time.time()
    counts = make_synthetic_rgbt(root, **params)
    log(f'synthetic data written to {root} in {time.time() - t0:.0f} s: {counts}')
    return root


def data_root_options(root: str) -> dict:
    """Config options setting ``data_root`` of the train, val and test sets."""
    return {
        f'{loader}.dataset.data_root': root
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    }


def _clip_schedulers(cfg, length: int, by_epoch: bool) -> None:
    """Parameter schedulers of the loop's unit end at ``length`` at the latest
    (a cosine's ``T_max`` follows its span); milestones are not rescaled."""
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for scheduler in schedulers:
        if bool(scheduler.get('by_epoch', True)) != by_epoch:
            continue
        if scheduler.get('end', math.inf) > length:
            scheduler['end'] = length
            if 'T_max' in scheduler:
                scheduler['T_max'] = length - scheduler.get('begin', 0)


def hook_within_iters(hook: dict, iters: int) -> dict:
    """A method hook's epoch-based schedule made to act within ``iters``
    iterations (a copy; other hooks unchanged): BTW refreshes after every
    iteration, RSC-MD warms up for one iteration, OGM-GE modulates throughout.
    For smoke runs, which train a few iterations of an epoch-based config."""
    hook = dict(hook)
    kind = hook.get('type')
    kind = (kind
            if isinstance(kind, str) else getattr(kind, '__name__', '')).split('.')[-1]
    if kind == 'BTWHook':
        hook.update(by_epoch=False, interval=1)
    elif kind == 'RSCMDHook':
        hook.pop('warmup_epochs', None)
        hook['warmup_iters'] = 1
    elif kind == 'OGMGEHook':
        hook.update(by_epoch=False, window=(0, iters))
    return hook


def apply_schedule(cfg,
                   epochs: Optional[int] = None,
                   max_iters: Optional[int] = None,
                   skip_validation: bool = True):
    """Change the training length of a loaded config (in place; returned).

    - ``epochs`` (a config with ``train_cfg.max_epochs``): that many epochs;
      schedulers by epoch end there at the latest (a cosine's ``T_max`` follows;
      milestones are kept), checkpoints by epoch every ``epochs``.
    - ``max_iters`` on an epoch-based config (smoke runs): an
      ``IterBasedTrainLoop`` of that many iterations, no parameter schedulers, a
      checkpoint at the end, no data worker processes, the method hooks'
      schedules made to act within it (:func:`hook_within_iters`; the demo's
      smoke mode).
    - ``max_iters`` on an iteration-based config (``train_cfg.max_iters``): that
      many iterations; schedulers by iteration end there at the latest.
    - ``skip_validation``: no validation during training (the benchmark tests
      by itself afterwards).

    Raises:
        ValueError: Both given, a value < 1, or ``epochs`` for an
            iteration-based config.
    """
    if epochs is not None and max_iters is not None:
        raise ValueError(f'give epochs ({epochs}) or max_iters ({max_iters}), not '
                         'both')
    for name, value in (('epochs', epochs), ('max_iters', max_iters)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    train_cfg = cfg.train_cfg
    by_epoch = 'max_epochs' in train_cfg
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if epochs is not None:
        if not by_epoch:
            raise ValueError(
                f'the config trains by iterations (train_cfg={dict(train_cfg)}); '
                'give max_iters instead of epochs')
        train_cfg.max_epochs = epochs
        _clip_schedulers(cfg, epochs, by_epoch=True)
        if checkpoint is not None and checkpoint.get('by_epoch', True):
            checkpoint['interval'] = epochs
    elif max_iters is not None and by_epoch:
        cfg.train_cfg = dict(
            type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
        cfg.param_scheduler = []
        cfg.default_hooks.checkpoint = dict(
            type='CheckpointHook', interval=max_iters, by_epoch=False)
        cfg.log_processor = dict(cfg.get('log_processor') or {}, by_epoch=False)
        for loader in ('train_dataloader', 'test_dataloader', 'val_dataloader'):
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
        cfg.custom_hooks = [
            hook_within_iters(hook, max_iters) for hook in cfg.get('custom_hooks', [])
        ]
        return cfg
    elif max_iters is not None:
        train_cfg.max_iters = max_iters
        _clip_schedulers(cfg, max_iters, by_epoch=False)
        if checkpoint is not None and not checkpoint.get('by_epoch', True):
            checkpoint['interval'] = max_iters
    if skip_validation:
        length = cfg.train_cfg.get('max_epochs', cfg.train_cfg.get('max_iters'))
        if length is not None:
            cfg.train_cfg.val_interval = length + 1
    return cfg


def set_test_scale(cfg, scale: Tuple[int, int]):
    """Every ``Resize`` of the val and test pipelines resizes to ``scale`` (the
    synthetic data's own size, when it is generated at another one)."""
    for loader in ('val_dataloader', 'test_dataloader'):
        for step in cfg[loader].dataset.pipeline:
            if step.get('type') == 'Resize':
                step['scale'] = tuple(scale)
    return cfg


@dataclass
class RunOptions:
    """How :func:`run_variant` trains and tests (everything but config, work
    dir and seed).

    Args:
        epochs, max_iters: Training length (see :func:`apply_schedule`); None
            keeps the config's.
        batch_size: Training batch size; None keeps the config's.
        cfg_options: More config options (``{'a.b': value}``), applied last.
        test_scale: ``(w, h)`` for the test pipelines' ``Resize``
            (:func:`set_test_scale`); None keeps the config's.
        scenarios: Robustness scenarios (some of ``blank``, ``missing``).
        fill: What a missing modality becomes (``zero``, ``mean``).
        metric: Metric key; None: the evaluator's headline metric.
        splits: ``'auto'`` (day / night where the dataset lists them), None, or
            ``{name: names or list file}``.
        degradations: ``(degradation, modality, severity)`` triples to test
            (:func:`mwam_mm.evaluation.degradations.degradation_plan`); not for
            ceilings.
        degradation_seed: Seed of the degradations' per-image draws.
        diagnostics: Log the gradient norm per branch
            (``BranchGradNormHook``) in runs without a custom hook, and keep the
            per-iteration history of ``mwam_*`` and ``grad_norm_*``.
        log: Called with progress messages (not part of the setup).
        quiet: Show only warnings of the run's logger on the console (the log
            file in the work dir keeps everything; not part of the setup).
    """
    epochs: Optional[int] = None
    max_iters: Optional[int] = None
    batch_size: Optional[int] = None
    cfg_options: dict = field(default_factory=dict)
    test_scale: Optional[Tuple[int, int]] = None
    scenarios: Sequence[str] = SCENARIOS
    fill: str = 'zero'
    metric: Optional[str] = None
    splits: Union[str, None, dict] = 'auto'
    degradations: Optional[Sequence[Tuple[str, str, int]]] = None
    degradation_seed: int = 0
    diagnostics: bool = True
    log: Optional[Callable[[str], None]] = None
    quiet: bool = False

    @classmethod
    def build(cls, options: Union[None, dict, 'RunOptions']) -> 'RunOptions':
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if not isinstance(options, dict):
            raise TypeError('run options must be a dict or RunOptions, got '
                            f'{type(options).__name__}')
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise KeyError(f'unknown run option(s) {unknown}; known: {sorted(known)}')
        return cls(**options)

    def evaluation(self) -> dict:
        """The test settings a stored result must match to be reused."""
        return dict(
            scenarios=list(self.scenarios),
            fill=self.fill,
            metric=self.metric,
            splits=self.splits,
            degradations=[list(d) for d in self.degradations or []],
            degradation_seed=self.degradation_seed)


def build_run_config(cfg_path: str, work_dir: str, seed: int, options=None):
    """The config of one run: ``cfg_path`` with the seed, the schedule, the
    batch size, the test scale, the diagnostics hook and the options."""
    from ..engine import load_config
    opts = RunOptions.build(options)
    cfg = load_config(cfg_path, {'randomness.seed': seed}, work_dir)
    apply_schedule(cfg, opts.epochs, opts.max_iters)
    if opts.batch_size is not None:
        cfg.train_dataloader.batch_size = opts.batch_size
    if opts.test_scale is not None:
        set_test_scale(cfg, opts.test_scale)
    if opts.cfg_options:
        cfg.merge_from_dict(dict(opts.cfg_options))
    backbone = cfg.model.get('backbone', {})
    # the same diagnostic for every fused variant (a unimodal model has one branch)
    if opts.diagnostics and not cfg.get('custom_hooks') and \
            not backbone.get('ignore_modalities'):
        cfg.custom_hooks = [dict(type='BranchGradNormHook')]
    return cfg


def repo_relative(path: str) -> str:
    """``path`` relative to the repository root when inside it, else absolute."""
    path = osp.abspath(path)
    return osp.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def training_setup(cfg, cfg_path: str, seed: int) -> dict:
    """What makes a trained model: the config (after options: its hash), the
    seed and the data (the synthetic generator's ``meta.txt``, when present)."""
    content = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ('work_dir', 'launcher', 'resume', 'load_from', 'log_level')
    }
    digest = hashlib.sha1(json.dumps(content, sort_keys=True,
                                     default=str).encode()).hexdigest()
    data = {}
    for loader in ('train_dataloader', 'test_dataloader'):
        root = cfg[loader].dataset.get('data_root') or ''
        meta = osp.join(root, 'meta.txt')
        data[loader] = dict(
            root=root,
            meta=open(meta).read().strip() if root and osp.isfile(meta) else None)
    return dict(
        config=repo_relative(cfg_path), seed=seed, config_hash=digest, data=data)


# --------------------------------------------------------------------------------
# one run


def _subset_names(names: Sequence[str]) -> List[str]:
    return [subset_name(s) for s in non_empty_subsets(names)]


def _quiet_console(logger) -> None:
    """Console handlers of ``logger`` show warnings only, file handlers INFO.

    The runner is built with ``log_level='WARNING'`` (its environment and
    config dumps then reach neither; the config is saved in the work dir
    anyway), and the file handlers are set back to INFO here: the run's log
    file keeps the training and test logs.
    """
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO)
        elif isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.WARNING)


def run_variant(cfg_path: str,
                work_dir: str,
                seed: int,
                options=None,
                variant: Optional[str] = None) -> dict:
    """Train one variant with one seed, then test it (scenarios, splits,
    degradations).

    A run whose ``work_dir`` holds a ``last_checkpoint`` resumes from it (a
    finished training is not repeated: only the tests run); the work dir's
    ``setup.json`` (written before training) must then show the same setup.

    Args:
        cfg_path (str): The variant's config.
        work_dir (str): The run's work dir (checkpoints, logs).
        seed (int): ``randomness.seed``.
        options (dict | RunOptions, optional): See :class:`RunOptions`.
        variant (str, optional): Name in the result; the config's stem by
            default.

    Returns:
        dict: ``variant``, ``seed``, ``config``, ``setup``
        (:func:`training_setup`), ``evaluation`` (:meth:`RunOptions.evaluation`),
        ``metric``, ``modalities``, ``used_modalities``, ``ceiling`` (the one
        modality of a unimodal model, else None), ``subsets``, ``scenarios``
        (``{scenario: {subset: score}}``; a ceiling has its own subset only),
        ``summaries`` (``{scenario: summarize(...)}``; not for ceilings),
        ``splits`` (``{split: {scenario: {subset: score}}}``), ``degradations``
        (or None), ``train_seconds``, ``eval_seconds``, ``history``
        (``{key: per-iteration values}``).
    """
    from ..engine import build_runner
    opts = RunOptions.build(options)
    log = opts.log or (lambda message: None)
    cfg_path = _existing(cfg_path)
    cfg = build_run_config(cfg_path, work_dir, seed, opts)
    setup = training_setup(cfg, cfg_path, seed)
    _check_stored_setup(work_dir, setup)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cfg.resume = True  # an interrupted or finished training goes on from there
    save_result(osp.join(work_dir, SETUP_FILE), setup)
    if isinstance(cfg.get('visualizer'), dict):
        # mmengine keeps one visualizer per name in a process: a fixed name would
        # send every later run's scalars to the first run's folder. Unnamed, it is
        # named after the run (config and start time), as mmengine's logger is.
        cfg.visualizer.pop('name', None)
    if opts.quiet:
        cfg.log_level = 'WARNING'
    runner = build_runner(cfg)
    if opts.quiet:
        _quiet_console(runner.logger)
    t0 = time.time()
    runner.train()
    train_seconds = time.time() - t0
    history = {}
    if opts.diagnostics:
        for key in runner.message_hub.log_scalars:
            if key.startswith(HISTORY_PREFIXES):
                history[key[len('train/'):]] = runner.message_hub.get_scalar(
                    key).data[0].tolist()
    model = getattr(runner.model, 'module', runner.model)
    backbone = getattr(model, 'backbone', None)
    layout = ModalityLayout.build(getattr(backbone, 'layout', None))
    ignored = list(getattr(backbone, 'ignored', []) or [])
    used = [n for n in layout.names if n not in ignored]
    subsets = None
    if ignored:  # a unimodal (or reduced) model: only subsets of what it uses
        subsets = non_empty_subsets(used)
    t0 = time.time()
    evaluation = evaluate_robustness(
        runner,
        layout,
        opts.fill,
        opts.metric,
        list(opts.scenarios),
        subsets=subsets,
        splits=opts.splits,
        degradations=None if ignored else opts.degradations,
        seed=opts.degradation_seed,
        same_in_all_scenarios=bool(ignored) and len(used) == 1,
        log=log)
    eval_seconds = time.time() - t0
    summaries = {} if ignored else {
        scenario: summarize(scores, layout)
        for scenario, scores in evaluation['scenarios'].items()
    }
    return dict(
        variant=variant or osp.splitext(osp.basename(cfg_path))[0],
        seed=seed,
        config=repo_relative(cfg_path),
        work_dir=work_dir,
        setup=setup,
        evaluation=opts.evaluation(),
        metric=evaluation['metric'],
        modalities=layout.names,
        used_modalities=used,
        ceiling=used[0] if ignored and len(used) == 1 else None,
        subsets=_subset_names(layout.names),
        scenarios=evaluation['scenarios'],
        summaries=summaries,
        splits=evaluation['splits'],
        degradations=evaluation.get('degradations'),
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        history=history)


def save_result(path: str, result: dict) -> str:
    """Write a run's result as JSON, atomically (a crash leaves no half file)."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    return path


def load_result(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _setup_difference(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return '; '.join(f'{k}: {old.get(k)!r} -> {new.get(k)!r}' for k in keys
                     if old.get(k) != new.get(k))


def _check_stored_setup(run_dir: str, setup: dict) -> None:
    """A run dir with a checkpoint must have been trained with ``setup``."""
    if not osp.isfile(osp.join(run_dir, 'last_checkpoint')):
        return
    path = osp.join(run_dir, SETUP_FILE)
    if not osp.isfile(path):
        raise ValueError(
            f'{run_dir} holds a checkpoint of a training that was not started by '
            f'run_variant (no {SETUP_FILE}); remove it (--force), or use another '
            'work dir')
    old = load_result(path)
    if old != json.loads(json.dumps(setup)):
        raise ValueError(
            f'{run_dir} holds a training of another setup '
            f'({_setup_difference(old, setup)}); remove it (--force), or use '
            'another work dir')


def stored_status(run_dir: str, setup: dict, evaluation: dict) -> str:
    """What the run in ``run_dir`` still needs: ``'train'`` (no result; an
    interrupted training then resumes), ``'evaluate'`` (trained, tested with
    other settings) or ``'done'`` (its ``result.json`` is reused).

    Raises:
        ValueError: The stored result or checkpoint was trained with another
            setup (config, options, seed or data), named in the message.
    """
    path = osp.join(run_dir, RESULT_FILE)
    if not osp.isfile(path):
        _check_stored_setup(run_dir, setup)
        return 'train'
    stored = load_result(path)
    old = stored.get('setup', {})
    if old != json.loads(json.dumps(setup)):
        raise ValueError(
            f'{path} holds a run trained with another setup '
            f'({_setup_difference(old, setup)}); pass --force to retrain it, or '
            'use another work dir')
    # a result is reused only when every value is the same, JSON round-trip alike
    if stored.get('evaluation') != json.loads(json.dumps(evaluation)):
        return 'evaluate'
    return 'done'


# --------------------------------------------------------------------------------
# statistics


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
    """``stats`` against the baseline's: the difference of the means, the
    two-standard-error threshold ``2 sqrt(se^2 + se_base^2)`` and whether the
    difference exceeds it (None without standard errors)."""
    if stats.get('mean') is None or base.get('mean') is None:
        return None
    diff = stats['mean'] - base['mean']
    if stats.get('se') is None or base.get('se') is None:
        return dict(diff=diff, threshold=None, marked=None)
    threshold = 2.0 * math.sqrt(stats['se']**2 + base['se']**2)
    return dict(diff=diff, threshold=threshold, marked=abs(diff) > threshold)


def fraction_of_ceiling(stats: dict, ceiling: Optional[dict]) -> Optional[float]:
    """The ratio of the mean score to the ceiling's mean (None without one)."""
    if ceiling is None or stats.get('mean') is None or not ceiling.get('mean'):
        return None
    return stats['mean'] / ceiling['mean']


def _board(runs: Dict[str, List[dict]], view: Callable[[dict], Optional[dict]],
           scenarios: Sequence[str], subsets: Sequence[str], modalities: Sequence[str],
           baseline: Optional[str]) -> dict:
    """Statistics over seeds of ``view(result) -> {scenario: {subset: score}}``."""
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
                    [collapse_rate(p, subsets) for p in per_seed])
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
                                        board['ceilings'].get(m, {}).get(scenario))
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


def aggregate(runs: Dict[str, List[dict]],
              scenarios: Optional[Sequence[str]] = None,
              baseline: str = BASELINE) -> dict:
    """The leaderboard from ``{variant: [run_variant results, one per seed]}``.

    Args:
        runs (dict): The results per variant (any order of seeds).
        scenarios (Sequence[str], optional): Default: those of the results.
        baseline (str): The variant the others are compared with (no marks
            when it is absent).

    Returns:
        dict: ``metric``, ``scenarios``, ``subsets``, ``modalities``,
        ``baseline``, ``seeds``, ``variants: {variant: {seeds, ceiling,
        scenarios: {scenario: {scores: {subset: stats}, mean, collapse_rate,
        fraction_of_ceiling: {modality: ratio}, vs_baseline: {subset | 'mean' |
        'collapse_rate': {diff, threshold, marked}}}}}}``, ``ceilings:
        {modality: {scenario: stats}}``, ``splits: {split: {variants,
        ceilings}}`` and ``degradations: {variant: ...}``. ``stats`` are
        :func:`seed_statistics`; ceilings have their own subset only, and no
        mean, collapse rate or fraction.
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
    subsets = first.get('subsets') or _subset_names(modalities)
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
    board.update(
        _board(runs, lambda r: r['scenarios'], scenarios, subsets, modalities,
               baseline))
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
            baseline)
        for split in splits
    }
    board['degradations'] = _degradation_board(runs, baseline)
    return board


# --------------------------------------------------------------------------------
# writers


def format_stats(stats: Optional[dict], digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± std`` (the mean alone with one seed), ``n/a`` without values."""
    if not stats or stats.get('mean') is None:
        return 'n/a'
    text = f'{stats["mean"] * scale:.{digits}f}'
    if stats.get('std') is not None:
        text += f' ± {stats["std"] * scale:.{digits}f}'
    return text


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
            f'{100 * fractions[m]:.0f}' if fractions.get(m) is not None else
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
        'single-camera mean as % of the unimodal ceiling\'s mean. Ceilings use one '
        'camera in training and test; they are tested once on it, the same score '
        'for both scenarios.', ''
    ]
    for scenario in board['scenarios']:
        out += [f'## Scenario `{scenario}`', ''] + _table_head(board, ()) + \
            _scenario_table(board, scenario) + ['']
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
    if extra_text:
        out += [extra_text, '']
    return '\n'.join(out)


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


# --------------------------------------------------------------------------------
# progress


def format_duration(seconds: float) -> str:
    """``54 s``, ``8 min``, ``2 h 5 min``."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f'{seconds:.0f} s'
    minutes = int(round(seconds / 60))
    if minutes < 90:
        return f'{minutes} min'
    return f'{minutes // 60} h {minutes % 60} min'


def default_jobs() -> int:
    """Runs at a time: 1 with a GPU; on a CPU of 2 or more cores, 2.

    Two single-threaded runs side by side finish ~1.7x sooner on this project's
    2-core machine than one after the other with 2 threads each (small convs use
    a second thread poorly). The thread count changes float summation order, so
    results are reproducible for the same number of jobs and cores.
    """
    import torch
    if torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def expected_cost(variant: str) -> float:
    """Rough training cost of a variant relative to the baseline's (for the
    order of parallel runs): auxiliary heads cost more, a ceiling has one
    stream."""
    if variant in CEILINGS:
        return 0.7
    return {'rsc-view': 2.0, 'rsc-md': 1.5}.get(variant, 1.0)


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


def _run_job(cfg_path: str, run_dir: str, seed: int, options: 'RunOptions',
             variant: str, result_path: str) -> tuple:
    """:func:`run_variant` in a worker process: ``(result, None, seconds)`` or
    ``(None, traceback, seconds)``; the result is saved to ``result_path``."""
    import traceback
    t0 = time.time()
    try:
        result = run_variant(cfg_path, run_dir, seed, options, variant)
    except Exception:  # reported by the caller, which goes on with the others
        return None, traceback.format_exc(), time.time() - t0
    save_result(result_path, result)
    return result, None, time.time() - t0


def run_jobs(jobs: List[tuple], workers: int):
    """Run :func:`run_variant` jobs ``(cfg_path, run_dir, seed, options, variant,
    result_path)``, ``workers`` at a time in fresh processes (one process each
    when ``workers`` is 1: the runs still do not share mmengine's global state).

    Yields ``(job, result or None, traceback or None, seconds)`` as jobs end
    (``seconds``: the run's own time, not its wait in the queue).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(
            max_workers=max(1, workers),
            mp_context=context,
            initializer=_init_worker,
            initargs=(threads, ),
            max_tasks_per_child=1) as pool:
        submitted = {pool.submit(_run_job, *job): job for job in jobs}
        for future in as_completed(submitted):
            yield (submitted[future], *future.result())


class Progress:
    """One line per run with the time left for the whole benchmark.

    The time left is the mean duration of the runs done here so far times the
    runs still to do, divided by the runs that go side by side (runs found
    finished cost nothing).

    Args:
        total (int): Runs in the benchmark.
        to_do (int): Of those, the runs that need training or testing.
        jobs (int): Runs at a time.
    """

    def __init__(self, total: int, to_do: int, jobs: int = 1):
        self.total = total
        self.to_do = to_do
        self.jobs = max(1, jobs)
        self.index = 0
        self.durations: List[float] = []

    def remaining(self) -> Optional[float]:
        left = self.to_do - len(self.durations)
        if left <= 0:
            return 0.0
        if not self.durations:
            return None
        return left * sum(self.durations) / len(self.durations) / self.jobs

    def line(self, variant: str, seed: int, seconds: Optional[float]) -> str:
        """The line after a run (``seconds`` None: found finished, skipped)."""
        self.index += 1
        if seconds is not None:
            self.durations.append(seconds)
        done = 'finished before, skipped' if seconds is None else \
            format_duration(seconds)
        left = self.remaining()
        tail = ('time left not known yet' if left is None else
                'nothing left' if left == 0 else f'about {format_duration(left)} left')
        return (f'{TAG} run {self.index}/{self.total} {variant} seed {seed}: {done}; '
                f'{tail}')


__all__ = [
    'default_jobs', 'run_jobs', 'VARIANTS', 'BASELINE', 'CEILINGS', 'ANALYSIS_VARIANTS',
    'SYNTHETIC_CONFIG', 'SYNTHETIC_DEFAULTS', 'RunOptions', 'available_variants',
    'variant_config', 'check_variants', 'ceiling_modality', 'is_synthetic_config',
    'synthetic_meta', 'default_synthetic_root', 'ensure_synthetic_data',
    'data_root_options', 'apply_schedule', 'set_test_scale', 'build_run_config',
    'training_setup', 'repo_relative', 'run_variant', 'save_result', 'load_result',
    'stored_status', 'seed_statistics', 'compare', 'fraction_of_ceiling', 'aggregate',
    'format_stats', 'leaderboard_markdown', 'leaderboard_chart', 'write_leaderboard',
    'format_duration', 'Progress'
]
