"""One run of the benchmark: a variant's config with the run's options, trained
with one seed and tested in every robustness scenario; its setup and result
stored in its work dir, so that a finished run is reused and an interrupted one
resumed."""
import hashlib
import json
import logging
import os
import os.path as osp
import time
from dataclasses import dataclass, field, fields
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.hooks import Hook

from mwam_mm.compat.checkpoint import load_local_checkpoint
from mwam_mm.compat.resume import check_last_checkpoint
from mwam_mm.engine import build_runner, load_config
from mwam_mm.evaluation import (SCENARIOS, evaluate_robustness, lower_is_better,
                                subset_name, summarize)
from mwam_mm.evaluation.robustness import PRIMARY_METRICS
from mwam_mm.modality import ModalityLayout, non_empty_subsets
from .schedule import apply_schedule, set_test_scale
from .variants import ROOT, apply_variant, ceiling_modality, existing_config

HISTORY_PREFIXES = ('train/mwam_', 'train/branch_k_', 'train/grad_norm_')
# the files a run keeps in its work dir: its setup (written before training) and
# its result (written after testing)
SETUP_FILE = 'setup.json'
RESULT_FILE = 'result.json'
# what makes a trained model; a stored setup is compared on these only (the
# config's path is a label: the same config reached from a leaf file or from a
# base and its overlays is the same training; so are the paths of the checkpoints
# the streams start from: their weights are compared, ``streams``)
SETUP_KEYS = ('seed', 'config_hash', 'data', 'streams')
#: the message hub's key of each validation's step (:class:`CurveStepHook`)
CURVE_STEP_KEY = 'curve/step'


@dataclass
class RunOptions:
    """How :func:`run_variant` trains and tests (everything but config, work
    dir and seed).

    Args:
        epochs, max_iters: Training length (see :func:`apply_schedule`); None
            keeps the config's.
        reference_epochs: Training length of the unimodal references (the
            ceiling variants) in epochs, where it differs from ``epochs``: long
            enough for their score to stop improving, which their curve shows
            (``curve_interval``; :func:`~.board.curve_board`); None: as the
            others. Not with ``max_iters``, nor for a config trained by
            iterations.
        curve_interval: Validate the references every this many epochs
            (iterations where the run trains by iterations: a config trained by
            iterations, or ``max_iters``) while they train, and keep the scores:
            their training curve; at most their training length; None: no
            curve.
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

    Raises:
        ValueError: ``reference_epochs`` with ``max_iters``.
    """
    epochs: Optional[int] = None
    max_iters: Optional[int] = None
    reference_epochs: Optional[int] = None
    curve_interval: Optional[int] = None
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

    def __post_init__(self):
        if self.reference_epochs is not None and self.max_iters is not None:
            raise ValueError(
                f'reference_epochs={self.reference_epochs} trains the references by '
                f'epochs, and max_iters={self.max_iters} trains every run, the '
                'references too, that many iterations: give one of them')

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


def final_checkpoint(cfg) -> str:
    """The file name of the checkpoint a run of ``cfg`` ends with
    (``epoch_<max_epochs>.pth`` or ``iter_<max_iters>.pth``: the benchmark's
    schedules save one at the end)."""
    train_cfg = cfg.train_cfg
    if 'max_epochs' in train_cfg:
        return f'epoch_{train_cfg.max_epochs}.pth'
    return f'iter_{train_cfg.max_iters}.pth'


def set_stream_checkpoints(cfg, checkpoints: Dict[str, str]):
    """Each named stream starts from the stream of the same name in a local
    checkpoint (``{modality: path}``; mmengine's ``Pretrained`` init with the
    prefix ``backbone.streams.<modality>.``). In place; returned."""
    backbone = cfg.model.backbone
    streams = backbone.get('streams') or {}
    for modality, path in checkpoints.items():
        stream = dict(streams.get(modality) or {})
        stream['init_cfg'] = dict(
            type='Pretrained', checkpoint=path, prefix=f'backbone.streams.{modality}.')
        streams[modality] = stream
    backbone.streams = streams
    return cfg


def build_run_config(cfg_path: str,
                     work_dir: str,
                     seed: int,
                     options=None,
                     variant: Optional[str] = None,
                     stream_checkpoints: Optional[Dict[str, str]] = None):
    """The config of one run: ``cfg_path`` with ``variant``'s overlays (none
    when None: ``cfg_path`` is the config to train), the seed, the schedule, the
    batch size, the test scale, the diagnostics hook and the options; with
    ``stream_checkpoints`` (``{modality: checkpoint}``), the streams' starting
    weights (:func:`set_stream_checkpoints`).

    The overlays are chosen and applied before the schedule is changed: a smoke
    run (``max_iters`` on an epoch-based config) trains the epoch-based method
    settings, made to act within it by :func:`apply_schedule`.

    Raises:
        ValueError: A schedule the config cannot take (:func:`apply_schedule`;
            ``reference_epochs`` for a reference of a config trained by
            iterations; a ``curve_interval`` longer than the reference's
            training), named.
    """
    opts = RunOptions.build(options)
    cfg = load_config(cfg_path, {'randomness.seed': seed}, work_dir)
    if variant is not None:
        cfg = apply_variant(cfg, cfg_path, variant)
    reference = variant is not None and ceiling_modality(variant) is not None
    epochs = opts.epochs
    if reference and opts.reference_epochs is not None:
        if 'max_epochs' not in cfg.train_cfg:
            raise ValueError(
                f'reference_epochs={opts.reference_epochs}: {cfg_path} trains by '
                f'iterations (train_cfg={dict(cfg.train_cfg)}); its references train '
                'as long as the other variants')
        epochs = opts.reference_epochs
    apply_schedule(cfg, epochs, opts.max_iters)
    if reference and opts.curve_interval is not None:
        length, unit = _length(cfg), _unit(cfg)
        if opts.curve_interval > length:
            raise ValueError(
                f'curve_interval={opts.curve_interval} is longer than the training '
                f'of {variant} ({length} {unit}s): its curve would have no point but '
                'the last')
        # the loop validates every interval and at its end (mmengine's loops)
        cfg.train_cfg.val_interval = opts.curve_interval
    if opts.batch_size is not None:
        cfg.train_dataloader.batch_size = opts.batch_size
    if opts.test_scale is not None:
        set_test_scale(cfg, opts.test_scale)
    if opts.cfg_options:
        cfg.merge_from_dict(dict(opts.cfg_options))
    if stream_checkpoints:
        set_stream_checkpoints(cfg, stream_checkpoints)
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


def _stream_inits(content: dict) -> Dict[str, dict]:
    """The ``Pretrained`` init configs of the backbone's streams in a config
    dict (``{modality: init_cfg}``; :func:`set_stream_checkpoints`)."""
    backbone = (content.get('model') or {}).get('backbone') or {}
    streams = backbone.get('streams') or {}
    return {
        m: s['init_cfg']
        for m, s in streams.items()
        if isinstance(s, dict) and isinstance(s.get('init_cfg'), dict)
        and s['init_cfg'].get('type') == 'Pretrained'
    }


def stream_weights_digest(path: str, prefix: str) -> Optional[str]:
    """The SHA-1 of the weights under ``prefix`` in the checkpoint ``path``
    (names, shapes, dtypes and values: not the file, whose meta and message hub
    differ between two trainings of the same weights); None when there is no
    such file.

    Raises:
        ValueError: The file cannot be read as a checkpoint (named).
    """
    if not osp.isfile(path):
        return None
    try:
        state = load_local_checkpoint(path, map_location='cpu')
    except (RuntimeError, OSError) as e:
        raise ValueError(f'a stream starts from {path}, which cannot be read: {e}')
    state = state.get('state_dict', state) if isinstance(state, dict) else {}
    digest = hashlib.sha1()
    for key in sorted(k for k in state if k.startswith(prefix)):
        value = state[key]
        if not isinstance(value, torch.Tensor):
            continue
        digest.update(f'{key} {tuple(value.shape)} {value.dtype}'.encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(
            torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def training_setup(cfg,
                   cfg_path: str,
                   seed: int,
                   variant: Optional[str] = None) -> dict:
    """What makes a trained model (:data:`SETUP_KEYS`): the config (after
    variant and options: its hash), the seed, the data (the synthetic
    generator's ``meta.txt``, when present) and, for streams that start from a
    checkpoint (``cmpt-frozen``: the references'), those weights
    (``streams``: :func:`stream_weights_digest`, None while the file is not
    there); and as labels the config file, the variant and those checkpoints'
    paths (``stream_checkpoints``: not in the hash, so that a moved work dir
    keeps its runs, while a reference trained again invalidates what started
    from it)."""
    content = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ('work_dir', 'launcher', 'resume', 'load_from', 'log_level')
    }
    inits = _stream_inits(content)
    streams, paths = {}, {}
    for modality, init in inits.items():
        path = str(init.get('checkpoint'))
        streams[modality] = stream_weights_digest(path, init.get('prefix', ''))
        paths[modality] = repo_relative(path)
        init['checkpoint'] = None  # the weights are compared instead
    digest = hashlib.sha1(json.dumps(content, sort_keys=True,
                                     default=str).encode()).hexdigest()
    data = {}
    for loader in ('train_dataloader', 'test_dataloader'):
        root = cfg[loader].dataset.get('data_root') or ''
        meta = osp.join(root, 'meta.txt')
        data[loader] = dict(
            root=root,
            meta=open(meta).read().strip() if root and osp.isfile(meta) else None)
    setup = dict(
        config=repo_relative(cfg_path), seed=seed, config_hash=digest, data=data)
    if inits:  # absent otherwise: the setups stored before stay valid
        setup.update(streams=streams, stream_checkpoints=paths)
    if variant is not None:
        setup['variant'] = variant
    return setup


# --------------------------------------------------------------------------------
# one run


def subset_names(names: Sequence[str]) -> List[str]:
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


class CurveStepHook(Hook):
    """Keeps the step of each validation (the epoch, or the iteration for a
    loop by iterations) in the message hub under :data:`CURVE_STEP_KEY`, next
    to mmengine's ``val/<metric>`` (``RuntimeInfoHook``).

    Both histories are saved in the checkpoints and resumed with them, so the
    scores of a resumed run keep their steps: mmengine's loops save a
    checkpoint before they validate at the same step, and a run resumed from it
    does not validate that step again.

    Args:
        by_epoch (bool): The training loop counts epochs.
    """

    priority = 'VERY_LOW'

    def __init__(self, by_epoch: bool):
        self.by_epoch = by_epoch

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        step = runner.epoch if self.by_epoch else runner.iter
        runner.message_hub.update_scalar(CURVE_STEP_KEY, step)


def _records_curve(cfg) -> bool:
    """The run validates while it trains (a reference with ``curve_interval``;
    the others' ``val_interval`` lies past their training, :func:`apply_schedule`)."""
    return cfg.train_cfg.get('val_interval', 0) <= _length(cfg)


def _curve_steps(runner) -> List[int]:
    buffer = runner.message_hub.log_scalars.get(CURVE_STEP_KEY)
    return [] if buffer is None else [int(v) for v in buffer.data[0].tolist()]


def _validate_final(runner, cfg) -> None:
    """Validate the final weights where the curve has no score for them: a run
    resumed from its final checkpoint (a finished training tested again) trains
    nothing, and that checkpoint was saved before the final validation."""
    steps = _curve_steps(runner)
    last = runner.epoch if _unit(cfg) == 'epoch' else runner.iter
    if runner.val_loop is not None and (not steps or steps[-1] != last):
        runner.val_loop.run()


def run_variant(cfg_path: str,
                work_dir: str,
                seed: int,
                options=None,
                variant: Optional[str] = None,
                stream_checkpoints: Optional[Dict[str, str]] = None) -> dict:
    """Train one variant with one seed, then test it (scenarios, splits,
    degradations).

    A run whose ``work_dir`` holds a ``last_checkpoint`` resumes from it (a
    finished training is not repeated: only the tests run); the work dir's
    ``setup.json`` (written before training) must then show the same setup.

    Args:
        cfg_path (str): The family's base config (with ``variant``), or the
            config to train (without).
        work_dir (str): The run's work dir (checkpoints, logs).
        seed (int): ``randomness.seed``.
        options (dict | RunOptions, optional): See :class:`RunOptions`.
        variant (str, optional): A name of :data:`~.variants.VARIANTS`, whose
            overlays are applied to ``cfg_path``; without, ``cfg_path`` is
            trained as it is and named by its stem in the result.
        stream_checkpoints (dict, optional): ``{modality: checkpoint}``: the
            streams' starting weights (``cmpt-frozen``: the references').

    Returns:
        dict: ``variant``, ``seed``, ``config``, ``setup``
        (:func:`training_setup`), ``evaluation`` (:meth:`RunOptions.evaluation`),
        ``metric``, ``modalities``, ``used_modalities``, ``ceiling`` (the one
        modality of a unimodal model, else None), ``subsets``, ``scenarios``
        (``{scenario: {subset: score}}``; a ceiling has its own subset only),
        ``summaries`` (``{scenario: summarize(...)}``; not for ceilings),
        ``splits`` (``{split: {scenario: {subset: score}}}``), ``degradations``
        (or None), ``train_seconds``, ``eval_seconds``, ``history``
        (``{key: per-iteration values}``), ``curve`` (:func:`training_curve`
        in the test metric, for a run that validates while it trains: a
        reference with ``curve_interval``; else None).
    """
    opts = RunOptions.build(options)
    log = opts.log or (lambda message: None)
    cfg_path = existing_config(cfg_path)
    cfg = build_run_config(cfg_path, work_dir, seed, opts, variant, stream_checkpoints)
    for modality, path in (stream_checkpoints or {}).items():
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'run_variant: the {modality} stream starts from {path}, which does '
                'not exist (its reference run has not finished, or failed)')
    setup = training_setup(cfg, cfg_path, seed, variant)
    _check_stored_setup(work_dir, setup)
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        # an interrupted or finished training goes on from there; an empty or
        # stale pointer is refused here, naming it, rather than by mmengine
        check_last_checkpoint(work_dir)
        cfg.resume = True
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
    curve_wanted = _records_curve(cfg)
    if curve_wanted:
        runner.register_hook(CurveStepHook(by_epoch=_unit(cfg) == 'epoch'))
    t0 = time.time()
    runner.train()
    if curve_wanted:
        _validate_final(runner, cfg)
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
    # in the metric the scores are in (the evaluator's headline one by default)
    curve = training_curve(runner, evaluation['metric']) if curve_wanted else None
    summaries = {} if ignored else {
        scenario: summarize(scores, layout, lower_is_better(evaluation['metric']))
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
        subsets=subset_names(layout.names),
        scenarios=evaluation['scenarios'],
        summaries=summaries,
        splits=evaluation['splits'],
        degradations=evaluation.get('degradations'),
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        history=history,
        curve=curve)


def _length(cfg) -> int:
    """The training length in the loop's unit (epochs or iterations)."""
    return int(cfg.train_cfg.get('max_epochs', cfg.train_cfg.get('max_iters')))


def _unit(cfg) -> str:
    """``'epoch'`` or ``'iter'``: what the training loop counts."""
    return 'epoch' if 'max_epochs' in cfg.train_cfg else 'iter'


def curve_points(length: int, interval: int) -> List[int]:
    """Where mmengine's training loops validate: every ``interval`` epochs (or
    iterations) and at the end."""
    return [k for k in range(1, length + 1) if k % interval == 0 or k == length]


def training_curve(runner, metric: Optional[str] = None) -> Optional[dict]:
    """The validation scores of a training run (its message hub's
    ``val/<metric>`` history) and their steps.

    The steps are those :class:`CurveStepHook` kept with the scores (a resumed
    run has those of its checkpoint's history and its own); without them, those
    of :func:`curve_points`, if the number of scores says that every point was
    validated once.

    Args:
        runner (Runner): The run, after training.
        metric (str, optional): The metric key; None: the first of
            :data:`~mwam_mm.evaluation.robustness.PRIMARY_METRICS` found.

    Returns:
        dict | None: ``metric``, ``unit`` (``'epoch'`` or ``'iter'``),
        ``points``, ``scores``; None without validation scores of ``metric``,
        or when their steps are not known.
    """
    hub = runner.message_hub
    found = {key[len('val/'):] for key in hub.log_scalars if key.startswith('val/')}
    if metric is None:
        metric = next((m for m in PRIMARY_METRICS if m in found), None)
    if metric is None or metric not in found:
        return None
    scores = [float(v) for v in hub.get_scalar(f'val/{metric}').data[0].tolist()]
    cfg = runner.cfg
    points = _curve_steps(runner)
    if len(points) != len(scores):  # not kept (a run of older code)
        points = curve_points(_length(cfg), int(cfg.train_cfg.val_interval))
        if len(points) != len(scores):
            return None
    return dict(metric=metric, unit=_unit(cfg), points=points, scores=scores)


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


def _same_setup(old: dict, new: dict) -> bool:
    """The stored setup ``old`` trained what ``new`` describes (same
    :data:`SETUP_KEYS`, JSON round-trip alike)."""
    new = json.loads(json.dumps(new))
    return all(old.get(k) == new.get(k) for k in SETUP_KEYS)


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
    if not _same_setup(old, setup):
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
    if not _same_setup(old, setup):
        raise ValueError(
            f'{path} holds a run trained with another setup '
            f'({_setup_difference(old, setup)}); pass --force to retrain it, or '
            'use another work dir')
    # a result is reused only when every value is the same, JSON round-trip alike
    if stored.get('evaluation') != json.loads(json.dumps(evaluation)):
        return 'evaluate'
    return 'done'


__all__ = [
    'HISTORY_PREFIXES', 'SETUP_FILE', 'RESULT_FILE', 'SETUP_KEYS', 'CURVE_STEP_KEY',
    'RunOptions', 'CurveStepHook', 'final_checkpoint', 'set_stream_checkpoints',
    'build_run_config', 'repo_relative', 'stream_weights_digest', 'training_setup',
    'subset_names', 'run_variant', 'curve_points', 'training_curve', 'save_result',
    'load_result', 'stored_status'
]
