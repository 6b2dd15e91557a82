"""A script of tools/ or benchmarks/ imported as a module, so that a test can
call its ``main(argv)`` in-process or patch its globals."""
import importlib.util
import os.path as osp

from tests.conftest import ROOT


def load_script(script: str, prefix: str = '_script'):
    """A fresh module of ``script`` (a path relative to the checkout's root),
    named ``<prefix>_<path>`` so that loads for different tests do not meet."""
    name = f'{prefix}_' + script.replace('/', '_')[:-len('.py')]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
