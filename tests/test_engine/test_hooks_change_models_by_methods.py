"""Hooks change a model through its public methods, at phase changes only: no hook
assigns a model attribute in ``before_train_iter`` / ``after_train_iter``."""
import pytest

import mwam_mm  # noqa: F401
from mwam_mm.engine import (BranchGradNormHook, BranchWeightHook, BTWHook, MWAMHook,
                            OGMGEHook, RSCMDHook)
from tests.helpers.runners import toy_runner
from tests.helpers.toy_btw import BTWToyModel, btw_runner

SIMPLE = (int, float, str, bool, type(None))


def attributes(model) -> dict:
    """Every plain attribute of every module: immutable values by value, the
    rest by identity (an assignment gives a new object)."""
    snapshot = {}
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if key in ('_parameters', '_buffers', '_modules') or 'hooks' in key:
                continue
            snapshot[(name, key)] = value if isinstance(value, SIMPLE) else id(value)
    return snapshot


def watch(runner, changes: list) -> None:
    """Record the model attributes each of our hooks' iteration points change."""
    model = runner.model
    for hook in runner.hooks:
        if not type(hook).__module__.startswith('mwam_mm'):
            continue
        for point in ('before_train_iter', 'after_train_iter'):
            original = getattr(hook, point)

            def wrapped(*args, _original=original, _point=point, _hook=hook, **kw):
                before = attributes(model)
                _original(*args, **kw)
                after = attributes(model)
                changed = sorted(k for k in before.keys() | after.keys()
                                 if before.get(k) != after.get(k))
                if changed:
                    changes.append((type(_hook).__name__, _point, changed))

            setattr(hook, point, wrapped)


@pytest.mark.parametrize(
    'hook,model',
    [
        (MWAMHook(), {}),
        (MWAMHook(apply='update'), {}),
        (OGMGEHook(), {}),
        (OGMGEHook(window=(1, None)), {}),  # opens at epoch 1
        (RSCMDHook(beta=0.0), dict(aux_losses=True)),  # warm-up ends at epoch 1
        (BranchWeightHook(weights=dict(rgb=0.5, thermal=2.0)), {}),
        (BranchGradNormHook(), {}),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, dict) else '')
def test_no_model_attribute_assigned_in_iteration_hooks(tmp_path, hook, model):
    runner = toy_runner(tmp_path, epochs=2, hooks=[hook], model=model, checkpoint=False)
    changes = []
    watch(runner, changes)
    runner.train()
    assert changes == []
    assert runner.iter == 8  # the hooks ran, every iteration


def test_rsc_md_and_ogm_ge_switch_the_model_when_the_phase_changes(tmp_path):
    """The phase changes land through the model's methods, at epoch starts."""
    seen = []
    rsc = RSCMDHook(beta=0.25)
    runner = toy_runner(
        tmp_path / 'rsc', epochs=2, hooks=[rsc], model=dict(aux_losses=True))
    backbone = runner.model.backbone
    original = backbone.set_fused_grad_scale
    backbone.set_fused_grad_scale = lambda s: (seen.append(
        (runner.epoch, s)), original(s))
    runner.train()
    assert seen == [(0, 1.0), (1, 0.25), (2, 1.0)]  # start, warm-up ends, after

    seen = []
    ogm = OGMGEHook(window=(1, None))
    runner = toy_runner(tmp_path / 'ogm', epochs=2, hooks=[ogm])
    model = runner.model
    original = model.set_modality_scores
    model.set_modality_scores = lambda s: (seen.append((runner.epoch, s)), original(s))
    runner.train()
    assert seen == [(1, 'view'), (2, None)]


def test_btw_writes_its_weights_into_the_batch_not_the_model(tmp_path):
    runner = btw_runner(
        tmp_path,
        BTWHook(interval=1, top_k=3, mi_bins=3),
        epochs=3,
        model=BTWToyModel(),
        name='btw-attrs')
    changes = []
    watch(runner, changes)
    runner.train()
    assert changes == []
    # and the model got them: weight 1 before the first refresh, then the stored
    assert [w is None for _, w in runner.model.seen] == [True, True] + [False] * 4
