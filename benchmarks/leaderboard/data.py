"""The synthetic data of the benchmark: made on demand, one folder per set of
generator parameters, and pointed to by config options."""
import os
import os.path as osp
import shutil
import time
from typing import Callable

from mwam_mm.datasets.synthetic import make_synthetic_rgbt, synthetic_meta

#: the synthetic generator's defaults (tools/make_synthetic_rgbt.py), the demo's
SYNTHETIC_DEFAULTS = dict(
    seed=0, num_train=400, num_test=100, width=160, height=128, night_fraction=0.5)


def is_synthetic_config(path: str) -> bool:
    """The config trains on the synthetic data (its file name says so)."""
    return 'synthetic' in osp.basename(path)


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


__all__ = [
    'SYNTHETIC_DEFAULTS', 'is_synthetic_config', 'synthetic_meta',
    'default_synthetic_root', 'ensure_synthetic_data', 'data_root_options'
]
