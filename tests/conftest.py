import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')
if ROOT not in sys.path:  # tests.helpers for subprocesses and imports
    sys.path.insert(0, ROOT)


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """A small synthetic RGB-T dataset in the LLVIP layout (shared by the suite)."""
    from mwam_mm.datasets import make_synthetic_rgbt
    root = str(tmp_path_factory.mktemp('synthetic_rgbt'))
    make_synthetic_rgbt(root, seed=3, num_train=12, num_test=6, width=96, height=80)
    return root


@pytest.fixture
def mmdet_scope():
    from mmengine.registry import DefaultScope
    name = f'test-mmdet-{id(object())}'
    scope = DefaultScope.get_instance(name, scope_name='mmdet')
    yield scope
    DefaultScope._instance_dict.pop(name, None)
