"""Exact resume of epoch-based training interrupted in the middle of an epoch.

mmengine 0.10.7's ``EpochBasedTrainLoop`` restores the epoch and iteration counters
of a checkpoint saved mid-epoch (``CheckpointHook(by_epoch=False)``), then runs the
whole epoch again from its first batch, with random streams that are not those of
the interrupted run: the resumed run trains on other batches, with other
augmentation, and ends with other weights. Three registered pieces make it exact:

- :class:`ResumableSampler` (``sampler=dict(type='ResumableSampler')``): mmengine's
  ``DefaultSampler`` (same order for the same seed and epoch), whose indices carry
  the key ``(seed, epoch, position)`` of their sample's random stream.
- :class:`SeededSamplesMixin`, in every mwam_mm dataset: a sample fetched with such
  an index runs its pipeline with Python's, numpy's and torch's global random
  generators seeded from that key, and restored afterwards. Its augmentation is
  then a function of the seed, the epoch and its position in the epoch: the same
  in the main process or in any data worker, interrupted or not.
- :class:`ResumableEpochBasedTrainLoop` (``train_cfg=dict(type=
  'ResumableEpochBasedTrainLoop', ...)``): on resume it continues the interrupted
  epoch at the next batch (it skips the batches already trained by their indices,
  without loading them), restores the sampler's seed, and runs every iteration
  (its data loading in the main process and its model step) with the global
  random generators seeded from ``(seed, iteration, rank)`` and restored
  afterwards, so that model-side randomness (modality dropout, proposal sampling,
  dropout) does not depend on what ran before. It registers
  :class:`ResumeStateHook`, which saves the position in the checkpoint.

What stays out of reach is listed in the README ("Reliability"): state that hooks
keep outside the checkpoint, hooks that act in ``before_train_epoch`` (they run
again when the interrupted epoch resumes), dataset wrappers that turn indices into
plain integers, random generators other than the global ones, nondeterministic GPU
kernels, and a different world size or batch size.
"""
import contextlib
import glob
import itertools
import logging
import os.path as osp
import random
import re
import zipfile
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import DATA_SAMPLERS, HOOKS, LOOPS
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from .checkpoint import TORCH_FILE_MAGIC

RESUME_KEY = 'resume_state'
_DATA, _STEP = 0, 1  # stream tags: an iteration's data loading, its model step
_END = object()


class SeededIndex(int):
    """A dataset index that carries the key of its sample's random stream.

    It is an ``int`` everywhere (indexing, batch samplers, pickling to workers);
    arithmetic on it gives a plain ``int``, without the key.
    """

    def __new__(cls, index: int, key: Sequence[int]):
        obj = super().__new__(cls, index)
        obj.key = tuple(int(k) for k in key)
        return obj

    def __reduce__(self):
        return SeededIndex, (int(self), self.key)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, key={self.key})'


def _seed_from(key: Sequence[int]) -> int:
    # SeedSequence mixes the key's entropy: neighbouring keys give unrelated seeds
    return int(
        np.random.SeedSequence([int(k) % 2**64 for k in key]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_randomness(key: Optional[Sequence[int]]):
    """Run a block with the global random generators seeded from ``key``.

    Seeds Python's ``random``, numpy's global ``RandomState`` and torch's CPU and
    CUDA generators, and restores their previous states afterwards, so the block
    neither depends on nor changes the streams around it. ``None``: does nothing.
    """
    if key is None:
        yield
        return
    seed = _seed_from(key)
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda_states = torch.cuda.get_rng_state_all() if cuda else None
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


class SeededSamplesMixin:
    """Datasets: fetch a :class:`SeededIndex` under its own random stream.

    Mixed in before the dataset base class. A plain index is fetched as before.
    """

    def __getitem__(self, idx):
        with seeded_randomness(getattr(idx, 'key', None)):
            return super().__getitem__(int(idx))


@DATA_SAMPLERS.register_module()
class ResumableSampler(DefaultSampler):
    """``DefaultSampler`` whose indices carry their sample's random stream.

    Same arguments and order as mmengine's ``DefaultSampler``; each index is a
    :class:`SeededIndex` keyed by ``(seed, epoch, position in the epoch)`` (the
    position over all ranks, so no two samples of an epoch share a stream). mwam_mm
    datasets then seed each sample's augmentation from it (see
    :class:`SeededSamplesMixin`); other datasets ignore the key.
    """

    def __iter__(self):
        indices = list(super().__iter__())
        positions = range(self.rank, self.total_size, self.world_size)
        return iter([
            SeededIndex(index, (self.seed, self.epoch, position))
            for index, position in zip(indices, positions)
        ])


class _SkipFirstBatches:
    """A batch sampler without its first ``skip`` batches (indices only)."""

    def __init__(self, batch_sampler, skip: int):
        self.batch_sampler, self.skip = batch_sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.batch_sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.batch_sampler) - self.skip)


def _sampler_of(dataloader):
    sampler = getattr(dataloader, 'sampler', None)
    batch_sampler = getattr(dataloader, 'batch_sampler', None)
    if not hasattr(sampler, 'seed') and batch_sampler is not None:
        sampler = getattr(batch_sampler, 'sampler', sampler)
    return sampler


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes a mid-epoch checkpoint exactly.

    Arguments as mmengine's ``EpochBasedTrainLoop``. Differences:

    - each iteration's data loading in the main process and its model step run
      under random streams seeded from ``(seed, iteration, rank)``
      (:func:`seeded_randomness`), so a resumed iteration draws what the
      uninterrupted one drew;
    - resuming a checkpoint saved in the middle of an epoch continues that epoch at
      the next batch: the batch sampler's first batches are skipped by their
      indices (nothing is loaded), for any sampler and batch sampler;
    - the sampler gets back the seed of the interrupted run (mmengine builds it
      with the new run's seed before the checkpoint's seed is restored).

    Data augmentation in data workers is exact with :class:`ResumableSampler`;
    with another sampler, only with ``num_workers=0``. It registers a
    :class:`ResumeStateHook` if the runner has none.
    """

    def __init__(self, runner, dataloader, max_epochs: int, **kwargs):
        super().__init__(runner, dataloader, max_epochs, **kwargs)
        # where training continues: (epoch, batches of that epoch done)
        self._position: Tuple[int, int] = (0, 0)
        self._resume_state: Optional[dict] = None
        if not any(isinstance(h, ResumeStateHook) for h in runner.hooks):
            runner.register_hook(ResumeStateHook())

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Where training continues, for :class:`ResumeStateHook`."""
        sampler = _sampler_of(self.dataloader)
        epoch, done = self._position
        return dict(
            epoch=epoch,
            batches_done=done,
            epoch_length=len(self.dataloader),
            sampler_seed=getattr(sampler, 'seed', None))

    def load_resume_state(self, state: Optional[dict]) -> None:
        """Keep a checkpoint's state until :meth:`run` (counters load later)."""
        self._resume_state = dict(state) if isinstance(state, dict) else None

    def _resume_point(self) -> int:
        """Batches of the current epoch already trained (0 for a fresh start)."""
        if self._iter == 0:
            return 0
        length = len(self.dataloader)
        state = self._resume_state
        self._resume_state = None
        if state is not None and state.get('iter') == self._iter and \
                state.get('epoch') == self._epoch:
            sampler = _sampler_of(self.dataloader)
            if state.get('sampler_seed') is not None and hasattr(sampler, 'seed'):
                sampler.seed = state['sampler_seed']
            if state.get('epoch_length') != length:
                print_log(
                    f'ResumableEpochBasedTrainLoop: an epoch has {length} batches '
                    f'now and had {state.get("epoch_length")} when the checkpoint '
                    'was saved (other data, batch size or world size?); the resumed '
                    'epoch will not be the interrupted one',
                    logger='current',
                    level=logging.WARNING)
            return min(int(state['batches_done']), length)
        # a checkpoint of another loop: mmengine's counters give the position, and
        # the sampler gets the seed mmengine gave it in the interrupted run (the
        # runner's, restored from the checkpoint by now)
        sampler = _sampler_of(self.dataloader)
        randomness = getattr(self.runner, '_randomness_cfg', None) or {}
        if hasattr(sampler, 'seed') and not randomness.get('diff_rank_seed', False):
            sampler.seed = self.runner.seed
        done = self._iter - self._epoch * length
        if not 0 <= done <= length:
            print_log(
                f'ResumableEpochBasedTrainLoop: the checkpoint (epoch {self._epoch}, '
                f'iteration {self._iter}) does not fit epochs of {length} batches; '
                'resuming at the start of the epoch',
                logger='current',
                level=logging.WARNING)
            return 0
        if done:
            print_log(
                'ResumableEpochBasedTrainLoop: the checkpoint has no resume state '
                'of this loop for its counters; continuing epoch '
                f'{self._epoch} at batch {done} with the same samples, but other '
                'random augmentation',
                logger='current',
                level=logging.WARNING)
        return done

    # ------------------------------------------------------------------ loop
    def run(self) -> torch.nn.Module:
        self.runner.call_hook('before_train')
        skip = self._resume_point()
        while self._epoch < self._max_epochs and not self.stop_training:
            self.run_epoch(skip)
            skip = 0
            self._decide_current_val_interval()
            if (self.runner.val_loop is not None and self._epoch >= self.val_begin
                    and (self._epoch % self.val_interval == 0
                         or self._epoch == self._max_epochs)):
                self.runner.val_loop.run()
        self.runner.call_hook('after_train')
        return self.runner.model

    def run_epoch(self, skip: int = 0) -> None:
        """Iterate one epoch, or its batches after the first ``skip``."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        sampler = _sampler_of(self.dataloader)
        if hasattr(sampler, 'set_epoch'):  # also without DistSamplerSeedHook
            sampler.set_epoch(self._epoch)
        self._position = (self._epoch, skip)
        loader = self._rest_of_epoch(skip) if skip else self.dataloader
        iterator = iter(loader)
        idx = skip
        while True:
            with seeded_randomness(self._key(_DATA)):
                data_batch = next(iterator, _END)
            if data_batch is _END:
                break
            self.run_iter(idx, data_batch)
            idx += 1
        # a checkpoint saved from here on resumes at the next epoch's start
        self._position = (self._epoch + 1, 0)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def run_iter(self, idx: int, data_batch) -> None:
        self._position = (self._epoch, idx + 1)
        with seeded_randomness(self._key(_STEP)):
            super().run_iter(idx, data_batch)

    def _key(self, stream: int) -> Tuple[int, ...]:
        return (self.runner.seed or 0, self._iter, get_rank(), stream)

    def _rest_of_epoch(self, skip: int) -> DataLoader:
        """A one-epoch loader like the loop's, without its first ``skip`` batches.

        A DataLoader's batch sampler cannot be replaced once built, so the rest of
        the interrupted epoch gets a loader of its own with the same dataset,
        workers and collate function; its batch sampler walks the same (seeded)
        order and drops the first batches by their indices.
        """
        loader = self.dataloader
        if loader.batch_sampler is None:
            raise RuntimeError(
                'ResumableEpochBasedTrainLoop: the train dataloader has no batch '
                'sampler (batch_size=None), so the batches already trained cannot '
                'be skipped; set a batch_size')
        print_log(
            f'ResumableEpochBasedTrainLoop: continuing epoch {self._epoch} at '
            f'batch {skip} of {len(loader)}',
            logger='current')
        extra = {}
        if loader.num_workers > 0:
            extra = dict(
                prefetch_factor=loader.prefetch_factor,
                multiprocessing_context=loader.multiprocessing_context)
        return DataLoader(
            loader.dataset,
            batch_sampler=_SkipFirstBatches(loader.batch_sampler, skip),
            num_workers=loader.num_workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            timeout=loader.timeout,
            worker_init_fn=loader.worker_init_fn,
            generator=loader.generator,
            persistent_workers=False,
            **extra)


@HOOKS.register_module()
class ResumeStateHook(Hook):
    """Save and restore :class:`ResumableEpochBasedTrainLoop`'s position.

    Writes ``checkpoint['resume_state']`` (epoch, batches done in it, the
    iteration counter, the epoch's length and the sampler's seed) when a
    checkpoint is saved during training, and hands it to the loop when one is
    loaded. The loop registers it; it does nothing with other loops.
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def _loop(runner):
        # runner.train_loop would build the train loop (and its data) in test runs
        loop = getattr(runner, '_train_loop', None)
        return loop if isinstance(loop, ResumableEpochBasedTrainLoop) else None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = self._loop(runner)
        if loop is None:
            return
        state = loop.state_dict()
        state['iter'] = checkpoint.get('meta', {}).get('iter')
        checkpoint[RESUME_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        loop = self._loop(runner)
        if loop is not None:
            loop.load_resume_state(checkpoint.get(RESUME_KEY))


POINTER_FILE = 'last_checkpoint'
_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def readable_checkpoint(path: str) -> bool:
    """Whether ``path`` looks like a whole checkpoint file, without loading it.

    A file that is missing, empty, or neither a complete zip archive (what
    ``torch.save`` writes) nor a legacy pickle is not: a training killed while
    saving leaves such files.
    """
    try:
        if not osp.isfile(path) or osp.getsize(path) == 0:
            return False
        with open(path, 'rb') as f:
            head = f.read(4)
    except OSError:
        return False
    if head.startswith(TORCH_FILE_MAGIC[0]):
        # a cut-off archive has no central directory at its end
        return zipfile.is_zipfile(path)
    return head.startswith(TORCH_FILE_MAGIC)


def newest_readable_checkpoint(work_dir: str) -> Optional[str]:
    """The newest readable ``epoch_*.pth`` or ``iter_*.pth`` in ``work_dir``.

    Newest by modification time, then by the number in the name (files saved
    within the same second); None when there is none.
    """
    found = []
    for path in glob.glob(osp.join(glob.escape(work_dir), '*.pth')):
        match = _CHECKPOINT_NAME.match(osp.basename(path))
        if match and readable_checkpoint(path):
            found.append((osp.getmtime(path), int(match.group(2)), path))
    return max(found)[2] if found else None


def check_last_checkpoint(work_dir: str) -> Optional[str]:
    """Check the pointer that mmengine's auto-resume reads, before the runner does.

    ``--resume`` without a path makes mmengine resume from the checkpoint named
    in ``work_dir/last_checkpoint``. An empty pointer (a job killed while writing
    it) gives mmengine's ``checkpoint  can not be found`` with an empty name, and
    a pointer to a file that is gone or cut off an error that does not say where
    the name came from. This raises an error naming the pointer file, and the newest
    readable ``epoch_*.pth``/``iter_*.pth`` of the work dir to resume from
    instead (or that there is none).

    Args:
        work_dir (str): The run's work dir.

    Returns:
        str | None: The checkpoint the pointer names (a path relative to the
        current directory, as mmengine reads it); None without a pointer file
        (mmengine then starts from scratch).

    Raises:
        FileNotFoundError: The pointer is empty, or names a missing or
            unreadable (empty, truncated) file.
    """
    pointer = osp.join(work_dir, POINTER_FILE)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        target = f.read().strip()
    if target and readable_checkpoint(target):
        return target
    if target and osp.isfile(target):
        problem = (f'names {target}, which is not a readable checkpoint (empty or '
                   'cut off while being saved?)')
    elif target:
        problem = f'names {target}, which does not exist'
    else:
        problem = 'is empty (a job killed while saving a checkpoint?)'
    newest = newest_readable_checkpoint(work_dir)
    if newest is None:
        advice = (f'{work_dir} holds no readable epoch_*.pth or iter_*.pth to '
                  f'resume from: train without --resume, or delete {pointer}')
    else:
        advice = (f'the newest readable checkpoint in {work_dir} is {newest}: '
                  f'resume from it with --resume {newest}, or write its path into '
                  f'{pointer}')
    raise FileNotFoundError(
        f'cannot resume: the checkpoint pointer {pointer} {problem}; {advice}')


__all__ = [
    'POINTER_FILE', 'check_last_checkpoint', 'newest_readable_checkpoint',
    'readable_checkpoint', 'ResumableEpochBasedTrainLoop', 'ResumableSampler',
    'ResumeStateHook', 'SeededIndex', 'SeededSamplesMixin', 'seeded_randomness'
]
