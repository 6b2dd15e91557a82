"""BTWHook: per-sample modality weights from the disagreement with the fusion.

BTW (Hou, Wang, Wang, arXiv 2508.18551) weights each modality of each training
sample by how much its unimodal prediction disagrees with the fused one (KL
divergence, min-max normalised over the training set) times how much the modality
tells about the fused prediction over the whole set (mutual information). The
adaptation to detection and segmentation, and the MI estimator, are ours (see
``docs/balancing-methods.md``, BTW).
"""
import logging
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dataset import ClassBalancedDataset, RepeatDataset
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader, Dataset

from ..compat.resume import SeededIndex, seeded_randomness
from ..models.modality_outputs import check_source, validate_source
from ..presence import MISSING_KEY, set_sample_weights
from .balancing_hook import ModalityBalancingHook, resuming, unwrap

STATE_KEY = 'btw'
_PASS_TAG = 0xB7  # keys the refresh pass's random streams apart from training's


def kl_per_image(unimodal: torch.Tensor,
                 fused: torch.Tensor,
                 eps: float = 1e-8) -> float:
    """Mean over the scoring units of ``KL(p_unimodal || p_fused)`` (nats).

    Args:
        unimodal (Tensor): ``(K, C)`` class probabilities, rows summing to 1.
        fused (Tensor): ``(K, C)``, the fused prediction of the same units.
        eps (float): Floor of the fused probabilities inside the logarithm.

    Returns:
        float: The mean KL; NaN when ``K == 0``.
    """
    if unimodal.shape[0] == 0:
        return float('nan')
    p = unimodal.double()
    q = fused.double().clamp(min=eps)
    # xlogy: 0 * log 0 = 0 for the classes a unimodal prediction rules out
    kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(dim=1)
    return float(kl.mean())


def confidence_per_image(probs: torch.Tensor) -> float:
    """The per-image score MI is computed on: the mean over the units of the
    highest class probability (NaN without units)."""
    if probs.shape[0] == 0:
        return float('nan')
    return float(probs.double().max(dim=1).values.mean())


def histogram_mutual_information(x: torch.Tensor, y: torch.Tensor, bins: int) -> float:
    """Mutual information (nats) of two paired samples, histogram-binned.

    Each variable is cut into ``bins`` equal-width bins over its observed range
    ``[min, max]`` (the last bin closed, as ``numpy.histogram2d``); MI is that of
    the joint histogram's empirical distribution, ``sum p(a, b) log(p(a, b) /
    (p(a) p(b)))``. A constant variable falls in one bin: MI 0. This plug-in
    estimate is biased upwards for few samples per cell (ours; see BTWHook).

    Args:
        x (Tensor): ``(N,)`` values.
        y (Tensor): ``(N,)`` values paired with ``x``.
        bins (int): Bins per variable.
    """
    if x.numel() == 0:
        return 0.0

    def binned(v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        low, high = float(v.min()), float(v.max())
        if high <= low:
            return torch.zeros_like(v, dtype=torch.long)
        inner = torch.linspace(low, high, bins + 1, dtype=torch.float64)[1:-1]
        return torch.bucketize(v, inner, right=True)

    joint = torch.zeros(bins, bins, dtype=torch.float64)
    joint.index_put_((binned(x), binned(y)),
                     torch.ones(x.numel(), dtype=torch.float64),
                     accumulate=True)
    joint /= joint.sum()
    px, py = joint.sum(dim=1, keepdim=True), joint.sum(dim=0, keepdim=True)
    nonzero = joint > 0
    outer = (px * py)[nonzero]
    ratio = joint[nonzero] / outer
    return max(0.0, float((joint[nonzero] * ratio.log()).sum()))


class _PassDataset(Dataset):
    """This rank's shard of the training set, each index keyed for its own random
    stream (mwam_mm datasets seed the sample's pipeline from it)."""

    def __init__(self, dataset, indices: Sequence[int], key: Sequence[int]):
        self.dataset, self.indices, self.key = dataset, list(indices), tuple(key)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        return self.dataset[SeededIndex(index, self.key + (index, ))]


@HOOKS.register_module()
class BTWHook(ModalityBalancingHook):
    """BTW: per-sample, per-modality weights on the stream features before fusion.

    **Weights.** Every ``interval`` epochs a pass over the training set (model in
    eval mode, no gradient) asks the model for its fused and unimodal
    predictions of each image's scoring units (the contract
    :meth:`~mwam_mm.models.ModalityOutputsMixin.modality_predictions`;
    detection: the ``top_k`` anchors or proposals of highest fused confidence;
    segmentation: the labelled pixels, at most ``top_k``). Per image ``i`` and
    modality ``m``:

    - ``KL_im``: the mean over the units of ``KL(p_m || p_fused)``;
      ``KLnorm_im = (KL_im - min_i KL_im) / (max_i KL_im - min_i KL_im)`` over the
      training set (1 for every image when all ``KL_im`` are equal);
    - ``MI_m``: the mutual information between the per-image scores ``s_im`` and
      ``s_i,fused`` over the training set, where a score is the image's mean
      highest class probability over its units, estimated from a joint histogram
      of ``mi_bins`` x ``mi_bins`` equal-width bins over each score's observed
      range (see :func:`histogram_mutual_information`; this estimator is ours);
    - ``new_im = KLnorm_im * MI_m`` (no normalisation across modalities), and
      ``w_im <- s * new_im + (1 - s) * w_im`` with ``w_im = 1`` before the first
      refresh and the fixed smoothing ``s`` (never adapted on test data).

    An image without units, or whose predictions are not finite, keeps its
    weights. The pass sees every modality of every image (a feature-level
    missing mark from the training pipeline is lifted for it).

    **Application.** Before each training iteration each data sample of the
    batch gets its weights (looked up by its ``sample_idx``) in its metainfo, as
    ``modality_weights`` (``{modality: weight}``, :mod:`mwam_mm.presence`); the
    RGB-T model passes them to the backbone
    (:class:`~mwam_mm.models.DualStreamBackbone`), which multiplies each sample's
    stream features by them before fusion, in training mode only: validation
    and test use weight 1.

    **Distributed.** Each rank scores its shard (indices ``rank::world_size``) with
    a sequential loader of its own (the training sampler is untouched); the
    per-image results are all-gathered, so every rank computes the same weights.
    The pass runs under its own random streams, seeded from ``(seed, epoch)``,
    and leaves the training's streams as they were.

    **Logged** after each refresh: ``btw_w_<m>_mean``, ``_std`` (population),
    ``_min``, ``_max`` over the training set and ``btw_mi_<m>``, plus a log line.
    The weights per ``sample_idx`` are saved in the checkpoint (``'btw'``) and
    restored when the run is resumed (``resume=True``), not for ``load_from``,
    which starts a new run (as mmengine's ``EMAHook``).

    **Needs** the samples' ``sample_idx`` in their metainfo (mmengine datasets
    set it; mmdet's ``PackDetInputs`` and mmseg's ``PackSegInputs`` keep it only
    with ``'sample_idx'`` in their ``meta_keys``), a model with
    per-modality predictions (the RGB-T detectors and segmentors) and a
    backbone with per-modality streams (``DualStreamBackbone``).

    Args:
        interval (int): Refresh every ``interval`` epochs (after epochs
            ``interval``, ``2 * interval``, ...; not after the last one, which no
            training would use). Defaults to 5.
        by_epoch (bool): ``interval`` counts epochs (default); False: it counts
            iterations (for iteration-based training loops, such as mmseg's).
        smoothing (float): ``s`` in ``(0, 1]``. Defaults to 0.5.
        rescale (bool): After each refresh divide every weight by the mean
            over all samples and modalities (default): the ratios between
            samples and between modalities stay, and the average training-time
            weight becomes 1, the weight at test time, so the features reaching
            the fusion (and the BatchNorm after it) keep their test-time scale.
            False is BTW's release: there the features are scaled by the mean
            weight (about 0.5) in training and not at test time.
        source (str): Unimodal predictions from ``'aux'`` heads, the ``'view'``
            or ``'auto'`` (default; see :mod:`mwam_mm.models.modality_outputs`).
        top_k (int): Scoring units per image (see above). Defaults to 100.
        mi_bins (int): Histogram bins per score for MI. Defaults to 10.
        batch_size (int, optional): Batch size of the pass. Defaults to the
            training loader's.
        num_workers (int, optional): Workers of the pass's loader. Defaults to
            the training loader's.
        branches (dict, optional): Branches for the ``grad_norm_<m>`` diagnostic
            (see :class:`ModalityBalancingHook`).
        log_grad_norm (bool): Log ``grad_norm_<m>``. Default True.
        modalities (list[dict], optional): Modality layout for a backbone without
            one.
    """

    def __init__(self,
                 interval: int = 5,
                 by_epoch: bool = True,
                 smoothing: float = 0.5,
                 rescale: bool = True,
                 source: str = 'auto',
                 top_k: int = 100,
                 mi_bins: int = 10,
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 branches: Optional[Dict[str, str]] = None,
                 log_grad_norm: bool = True,
                 modalities=None):
        super().__init__(branches, log_grad_norm, modalities)
        if not _is_int(interval) or interval <= 0:
            raise ValueError('BTWHook: interval must be a positive whole number of '
                             f'epochs, got {interval!r}')
        if isinstance(smoothing,
                      bool) or not isinstance(smoothing,
                                              (int, float)) or not 0 < smoothing <= 1:
            raise ValueError('BTWHook: smoothing must lie in (0, 1] (w <- s * new + '
                             f'(1 - s) * old), got {smoothing!r}')
        validate_source(source, 'BTWHook')
        for name, value, least in (('top_k', top_k, 1), ('mi_bins', mi_bins, 2)):
            if not _is_int(value) or value < least:
                raise ValueError(f'BTWHook: {name} must be an integer >= {least}, '
                                 f'got {value!r}')
        for name, value, least in (('batch_size', batch_size, 1), ('num_workers',
                                                                   num_workers, 0)):
            if value is not None and (not _is_int(value) or value < least):
                raise ValueError(f'BTWHook: {name} must be an integer >= {least} '
                                 f'or None, got {value!r}')
        self.interval = int(interval)
        self.by_epoch = bool(by_epoch)
        self.smoothing = float(smoothing)
        self.rescale = bool(rescale)
        self.source = source
        self.top_k = int(top_k)
        self.mi_bins = int(mi_bins)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.weights: Dict[int, List[float]] = {}  # sample_idx -> per modality
        self.refreshes = 0
        self.last_mi: Dict[str, float] = {}
        self._source: Optional[str] = None

    # ------------------------------------------------------------------ set-up
    def setup(self, runner) -> None:
        model = unwrap(runner.model)
        self._source = check_source(self.source, model, 'BTWHook')
        backbone = getattr(model, 'backbone', None)
        if backbone is None or not hasattr(backbone, 'forward_streams'):
            raise TypeError(
                'BTWHook weighs each modality\'s stream features before fusion, '
                'which needs a backbone with per-modality streams '
                f'(DualStreamBackbone); the model\'s backbone '
                f'{type(backbone).__name__} has none')

    @property
    def names(self) -> List[str]:
        return list(self.layout.names)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        loop = runner.train_loop
        if self.by_epoch and isinstance(loop, IterBasedTrainLoop):
            raise ValueError(
                f'BTWHook: by_epoch=True refreshes every `interval` epochs, and the '
                f'train loop {type(loop).__name__} counts iterations; set '
                'by_epoch=False with interval in iterations')
        unit = 'epoch' if self.by_epoch else 'iteration'
        print_log(
            f'BTWHook: modalities {self.names}, refresh every {self.interval} '
            f'{unit}(s), smoothing {self.smoothing}, source {self._source!r}, '
            f'top_k {self.top_k}, MI over {self.mi_bins} bins',
            logger='current')

    # --------------------------------------------------------- each iteration
    @staticmethod
    def sample_indices(data_samples) -> List[int]:
        """The ``sample_idx`` of each data sample (a clear error without it)."""
        indices = []
        for sample in data_samples:
            metainfo = getattr(sample, 'metainfo', None)
            if metainfo is None and isinstance(sample, dict):
                metainfo = sample
            index = (metainfo or {}).get('sample_idx')
            if index is None:
                keys = sorted(metainfo) if metainfo else []
                raise KeyError(
                    "BTWHook: a training data sample has no 'sample_idx' in its "
                    f'metainfo (it has {keys}); BTW keys its weights by it. '
                    "mmdet's PackDetInputs and mmseg's PackSegInputs drop it unless "
                    "their meta_keys include 'sample_idx': add it to the Pack step "
                    'of the training pipeline')
            indices.append(int(index))
        return indices

    def batch_weights(self, data_samples) -> torch.Tensor:
        """``(B, M)`` weights of a batch's samples (1 where none is stored)."""
        ones = [1.0] * len(self.names)
        return torch.tensor(
            [self.weights.get(i, ones) for i in self.sample_indices(data_samples)],
            dtype=torch.float32)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        super().before_train_iter(runner, batch_idx, data_batch)
        samples = data_batch.get('data_samples') if isinstance(data_batch,
                                                               dict) else None
        if samples is None:
            raise KeyError(
                'BTWHook: the training batch has no data_samples; BTW reads each '
                "sample's 'sample_idx' from them")
        weights = self.batch_weights(samples)  # checks sample_idx every iteration
        # before the first refresh every weight is 1: nothing to multiply
        if self.weights:
            set_sample_weights(samples, weights, self.layout)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        super().after_train_iter(runner, batch_idx, data_batch, outputs)
        if not self.by_epoch and self.every_n_train_iters(runner, self.interval) \
                and runner.iter + 1 < runner.max_iters:
            self.refresh(runner)

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval) \
                and runner.epoch + 1 < runner.max_epochs:  # else none would use it
            self.refresh(runner)

    # ------------------------------------------------------------------ refresh
    def _pass_key(self, runner) -> tuple:
        step = runner.epoch if self.by_epoch else runner.iter
        return (int(runner.seed), _PASS_TAG, int(step))

    def _pass_loader(self, runner) -> DataLoader:
        train_loader = runner.train_dataloader
        dataset = train_loader.dataset
        # wrappers that repeat samples: each sample once is enough (and its
        # sample_idx stays unique)
        while isinstance(dataset, (RepeatDataset, ClassBalancedDataset)):
            dataset = dataset.dataset
        rank, world_size = get_dist_info()
        key = self._pass_key(runner)
        workers = self.num_workers
        if workers is None:
            workers = getattr(train_loader, 'num_workers', 0)
        return DataLoader(
            _PassDataset(dataset, range(rank, len(dataset), world_size), key),
            batch_size=self.batch_size or train_loader.batch_size or 1,
            shuffle=False,
            num_workers=workers,
            collate_fn=train_loader.collate_fn)

    def _score_batch(self, model, data_batch) -> List[list]:
        """``[sample_idx, kl per modality..., score per modality..., fused
        score]`` per image of a batch."""
        data = model.data_preprocessor(data_batch, False)
        samples = data['data_samples']
        indices = self.sample_indices(samples)
        for sample in samples:  # score every image with all its modalities
            sample.set_metainfo({MISSING_KEY: []})
        preds = model.modality_predictions(
            data['inputs'], samples, source=self._source, top_k=self.top_k)
        expected = ['fused'] + self.names
        if not isinstance(preds, dict) or any(k not in preds for k in expected):
            got = sorted(preds) if isinstance(preds, dict) else type(preds).__name__
            raise KeyError(
                f'BTWHook: modality_predictions of {type(model).__name__} must give '
                f'{expected}, got {got}')
        rows = []
        for i, index in enumerate(indices):
            fused = preds['fused'][i]
            kls = [kl_per_image(preds[m][i], fused) for m in self.names]
            scores = [confidence_per_image(preds[m][i]) for m in self.names]
            rows.append([index] + kls + scores + [confidence_per_image(fused)])
        return rows

    @torch.no_grad()
    def refresh(self, runner) -> None:
        """Score the training set, gather the results, update the weights."""
        model = unwrap(runner.model)
        was_training = model.training
        model.eval()
        rows: List[list] = []
        try:
            with seeded_randomness(self._pass_key(runner)):
                for data_batch in self._pass_loader(runner):
                    rows.extend(self._score_batch(model, data_batch))
        finally:
            model.train(was_training)
        gathered = [row for part in all_gather_object(rows) for row in part]
        self.update(gathered)
        self.refreshes += 1
        self._log(runner, len(gathered))

    def update(self, rows: List[list]) -> None:
        """Update the weights from the per-image rows of the whole training set
        (``[sample_idx, KL_m..., s_m..., s_fused]``); every rank computes the
        same, in ``sample_idx`` order."""
        rows = sorted(rows, key=lambda row: row[0])
        seen = set()
        for row in rows:
            if row[0] in seen:
                raise ValueError(
                    f'BTWHook: sample_idx {row[0]} occurs more than once in the '
                    'training set; BTW keys its weights by sample_idx, which must '
                    'be unique (a ConcatDataset repeats its datasets\' indices)')
            seen.add(row[0])
        num = len(self.names)
        table = torch.tensor([row[1:] for row in rows],
                             dtype=torch.float64).view(len(rows), 2 * num + 1)
        indices = [int(row[0]) for row in rows]
        fused_score = table[:, 2 * num]
        self.last_mi = {}
        for m, name in enumerate(self.names):
            kl, score = table[:, m], table[:, num + m]
            valid = torch.isfinite(kl) & torch.isfinite(score) & torch.isfinite(
                fused_score)
            if not bool(valid.any()):
                print_log(
                    f'BTWHook: no image with scoring units for {name!r}; its '
                    'weights stay as they were',
                    logger='current',
                    level=logging.WARNING)
                continue
            kl_valid = kl[valid]
            low, high = float(kl_valid.min()), float(kl_valid.max())
            norm = (kl_valid - low) / (high - low) if high > low else \
                torch.ones_like(kl_valid)
            mi = histogram_mutual_information(score[valid], fused_score[valid],
                                              self.mi_bins)
            self.last_mi[name] = mi
            new = (norm * mi).tolist()
            valid_rows = valid.nonzero().squeeze(1).tolist()
            for j, value in zip(valid_rows, new):
                index = indices[j]
                old = self.weights.setdefault(index, [1.0] * num)
                old[m] = self.smoothing * value + (1 - self.smoothing) * old[m]
        for index in indices:  # images seen without units: weight 1 stored
            self.weights.setdefault(index, [1.0] * num)
        if self.rescale:
            total = sum(sum(row) for row in self.weights.values())
            mean = total / (num * len(self.weights))
            if mean > 0:
                self.weights = {
                    i: [w / mean for w in row]
                    for i, row in self.weights.items()
                }

    def weight_statistics(self) -> Dict[str, Dict[str, float]]:
        """Mean, std (population), min and max of each modality's weights over the
        stored samples."""
        if not self.weights:
            return {}
        table = torch.tensor(list(self.weights.values()), dtype=torch.float64)
        stats = {}
        for m, name in enumerate(self.names):
            w = table[:, m]
            stats[name] = dict(
                mean=float(w.mean()),
                std=float(w.std(unbiased=False)),
                min=float(w.min()),
                max=float(w.max()))
        return stats

    def _log(self, runner, count: int) -> None:
        hub = runner.message_hub
        parts = []
        for name, stats in self.weight_statistics().items():
            for stat, value in stats.items():
                hub.update_scalar(f'train/btw_w_{name}_{stat}', value)
            mi = self.last_mi.get(name, float('nan'))
            if math.isfinite(mi):
                hub.update_scalar(f'train/btw_mi_{name}', mi)
            parts.append(f'{name}: mean {stats["mean"]:.4f} std {stats["std"]:.4f} '
                         f'min {stats["min"]:.4f} max {stats["max"]:.4f} '
                         f'(MI {mi:.4f})')
        when = f'epoch {runner.epoch + 1}' if self.by_epoch else \
            f'iteration {runner.iter + 1}'
        print_log(
            f'BTWHook: weights refreshed after {when} from '
            f'{count} images; ' + '; '.join(parts),
            logger='current')

    # --------------------------------------------------------------- state
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.layout is None:
            return
        indices = sorted(self.weights)
        checkpoint[STATE_KEY] = dict(
            modalities=self.names,
            sample_idx=torch.tensor(indices, dtype=torch.long),
            weights=torch.tensor([self.weights[i] for i in indices],
                                 dtype=torch.float64).view(
                                     len(indices), len(self.names)),
            refreshes=self.refreshes)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(STATE_KEY)
        if state is None:
            return
        if not resuming(runner):
            # load_from starts a new run, maybe on other data: weights keyed by
            # another run's sample_idx would land on unrelated samples
            print_log(
                'BTWHook: the loaded checkpoint has BTW weights; they are not '
                'restored (load_from starts a new run; resume=True continues one)',
                logger='current')
            return
        if self.layout is None:
            raise RuntimeError(
                "BTWHook: a checkpoint was loaded before the hook's before_run; "
                'the runner calls before_run first (Runner.train/val/test)')
        if list(state['modalities']) != self.names:
            raise ValueError(f'BTWHook: the checkpoint\'s weights are for modalities '
                             f'{list(state["modalities"])}, the model has {self.names}')
        self.weights = {
            int(i): [float(v) for v in row]
            for i, row in zip(state['sample_idx'].tolist(), state['weights'].tolist())
        }
        self.refreshes = int(state.get('refreshes', 0))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
