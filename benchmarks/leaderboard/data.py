"""The synthetic data of the benchmark: made on demand, one folder per set of
generator parameters, and pointed to by config options."""
import os
import os.path as osp
import shutil
import time
from typing import Callable

from mmengine.config import Config

from mwam_mm.datasets.synthetic import make_synthetic_rgbt, synthetic_meta

#: the synthetic generator's defaults (tools/make_synthetic_rgbt.py), the demo's
SYNTHETIC_DEFAULTS = dict(
    seed=0, num_train=400, num_test=100, width=160, height=128, night_fraction=0.5)
#: the dataset classes that read each task's synthetic data (the layout it is
#: written in: LLVIP's for detection, MFNet's for segmentation)
SYNTHETIC_READERS = dict(LLVIPDataset='detection', MFNetDataset='segmentation')
#: the folder of each task's synthetic data with the defaults
SYNTHETIC_ROOTS = dict(detection='synthetic_rgbt', segmentation='synthetic_rgbt_seg')


def is_synthetic_config(path: str) -> bool:
    """The config trains on the synthetic data (its file name says so)."""
    return 'synthetic' in osp.basename(path)


def synthetic_task(path: str) -> str:
    """``'detection'`` or ``'segmentation'``: which synthetic data the config
    ``path`` reads, by its training dataset's class (the wrapped one, for a
    dataset wrapper such as ``RepeatDataset``).

    Raises:
        ValueError: The config has no training dataset, or one of a class that
            reads neither layout (named).
    """
    cfg = Config.fromfile(path, import_custom_modules=False)
    dataset = (cfg.get('train_dataloader') or {}).get('dataset')
    while isinstance(dataset, dict) and ('dataset' in dataset or 'datasets' in dataset):
        dataset = dataset.get('dataset') or (dataset.get('datasets') or [None])[0]
    if not isinstance(dataset, dict):
        raise ValueError(f'{path}: no train_dataloader.dataset, so it reads no '
                         'synthetic data')
    kind = dataset.get('type', '')
    kind = str(getattr(kind, '__name__', kind)).split('.')[-1]
    if kind not in SYNTHETIC_READERS:
        raise ValueError(
            f'{path}: its training dataset {kind!r} reads no synthetic layout; the '
            f'synthetic data is read by {sorted(SYNTHETIC_READERS)}')
    return SYNTHETIC_READERS[kind]


def default_synthetic_root(task: str = 'detection', **params) -> str:
    """``data/synthetic_rgbt`` (detection) or ``data/synthetic_rgbt_seg``
    (segmentation) for the defaults; a folder named by the parameters otherwise
    (so held-out variants do not overwrite the demo's data).

    Raises:
        ValueError: An unknown task.
    """
    if task not in SYNTHETIC_ROOTS:
        raise ValueError(f'synthetic task must be one of {tuple(SYNTHETIC_ROOTS)}, '
                         f'got {task!r}')
    p = dict(SYNTHETIC_DEFAULTS, **params)
    name = SYNTHETIC_ROOTS[task]
    if p == SYNTHETIC_DEFAULTS:
        return osp.join('data', name)
    return osp.join(
        'data', f'{name}_seed{p["seed"]}_night{float(p["night_fraction"])}_'
        f'{p["width"]}x{p["height"]}_{p["num_train"]}-{p["num_test"]}')


def ensure_synthetic_data(root: str,
                          seed: int = 0,
                          num_train: int = 400,
                          num_test: int = 100,
                          width: int = 160,
                          height: int = 128,
                          night_fraction: float = 0.5,
                          task: str = 'detection',
                          log: Callable[[str], None] = print) -> str:
    """Make the synthetic dataset of ``task`` in ``root`` unless it is there
    with these parameters (its ``meta.txt``). A synthetic dataset of other
    parameters (or of the other task) is replaced; a folder with other content
    is refused.

    Returns:
        str: ``root``.
    """
    params = dict(
        seed=seed,
        num_train=num_train,
        num_test=num_test,
        width=width,
        height=height,
        night_fraction=float(night_fraction))
    wanted = synthetic_meta(**params, task=task)
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
    counts = make_synthetic_rgbt(root, **params, task=task)
    log(f'synthetic data written to {root} in {time.time() - t0:.0f} s: {counts}')
    return root


def data_root_options(root: str) -> dict:
    """Config options setting ``data_root`` of the train, val and test sets."""
    return {
        f'{loader}.dataset.data_root': root
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    }


__all__ = [
    'SYNTHETIC_DEFAULTS', 'SYNTHETIC_READERS', 'SYNTHETIC_ROOTS', 'is_synthetic_config',
    'synthetic_task', 'synthetic_meta', 'default_synthetic_root',
    'ensure_synthetic_data', 'data_root_options'
]
