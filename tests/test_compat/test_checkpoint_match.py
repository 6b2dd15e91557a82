"""A checkpoint that does not fit the model is refused, with a summary."""
import re

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.compat import (CheckpointMatchHook, CheckpointMismatchError,
                            load_local_checkpoint)
from tests.helpers.runners import params_of, toy_runner


def other_model_checkpoint(runner, path):
    """The runner's weights, as another model would have them: 2 tensors gone,
    3 more, 1 of another shape (and a DDP 'module.' prefix, which is fine)."""
    state = {f'module.{k}': v.clone() for k, v in params_of(runner).items()}
    del state['module.head.weight'], state['module.head.bias']
    for i in range(3):
        state[f'module.extra.{i}.weight'] = torch.zeros(2)
    conv = 'module.backbone.streams.rgb.conv1.weight'
    state[conv] = torch.zeros(4, 3, 5, 5)
    torch.save(dict(meta=dict(epoch=1, iter=4), state_dict=state), path)
    return state


def test_a_checkpoint_of_another_model_is_refused_with_a_summary(tmp_path):
    source = toy_runner(tmp_path / 's', epochs=0, name='src')
    path = tmp_path / 'other_model.pth'
    other_model_checkpoint(source, path)

    runner = toy_runner(
        tmp_path / 'w',
        epochs=0,
        load_from=str(path),
        name='w',
        hooks=[dict(type='CheckpointMatchHook')])
    before = params_of(runner)
    with pytest.raises(CheckpointMismatchError) as info:
        runner.load_or_resume()
    message = str(info.value)
    assert re.search(
        r'checkpoint .*other_model\.pth does not fit the model '
        r'ToyRGBTModel \(\d+ tensors in the model, \d+ in the file\)', message)
    assert "missing: 2 of the model's tensors are not in the file: " \
        'head.weight, head.bias' in message
    assert 'unexpected: 3 tensors in the file are not in the model: ' \
        'extra.0.weight, extra.1.weight, extra.2.weight' in message
    assert 'mis-shaped: 1 tensors have another shape: backbone.streams.rgb.conv1.' \
        'weight: (4, 3, 5, 5) in the file, (4, 3, 3, 3) in the model' in message
    assert '--allow-partial-checkpoint' in message
    after = params_of(runner)  # refused before anything was loaded
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_partial_load_when_meant(tmp_path):
    source = toy_runner(tmp_path / 's', epochs=0, name='src2')
    path = tmp_path / 'partial.pth'
    state = other_model_checkpoint(source, path)
    runner = toy_runner(
        tmp_path / 'w',
        epochs=0,
        load_from=str(path),
        name='w2',
        hooks=[dict(type='CheckpointMatchHook', allow_partial=True)])
    runner.load_or_resume()
    loaded = params_of(runner)
    key = 'backbone.streams.thermal.conv1.weight'
    assert torch.equal(loaded[key], state['module.' + key])
    # but not when nothing fits, nor to resume
    torch.save(dict(state_dict={'conv1.weight': torch.zeros(1)}), tmp_path / 'x.pth')
    nothing = toy_runner(
        tmp_path / 'n',
        epochs=0,
        load_from=str(tmp_path / 'x.pth'),
        name='n',
        hooks=[CheckpointMatchHook(allow_partial=True)])
    with pytest.raises(
            CheckpointMismatchError,
            match="None of its tensors fits.*"
            "init_cfg=dict.*type='Pretrained'"):
        nothing.load_or_resume()


def test_resume_with_another_model_fails_before_the_optimizer(tmp_path):
    source = toy_runner(tmp_path / 's', epochs=1, name='src3')
    source.train()
    ckpt = load_local_checkpoint(str(tmp_path / 's' / 'epoch_1.pth'))
    ckpt['state_dict'].pop('head.bias')
    torch.save(ckpt, tmp_path / 'changed.pth')
    resumed = toy_runner(
        tmp_path / 'r',
        epochs=2,
        resume=True,
        name='r',
        load_from=str(tmp_path / 'changed.pth'),
        hooks=[CheckpointMatchHook(allow_partial=True)])
    with pytest.raises(
            CheckpointMismatchError,
            match=r'(?s)changed\.pth does not fit.*missing: 1 .*head\.bias'
            '.*Resuming needs the checkpoint of this very model'):
        resumed.train()


def test_stream_init_cfg_still_loads_a_unimodal_backbone(tmp_path):
    """A single-modality ResNet checkpoint initialises one stream through its
    init_cfg (mmengine's load_checkpoint, not the runner): no refusal there."""
    stream = dict(type='ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3))
    with DefaultScope.overwrite_default_scope('mmdet'):
        unimodal = MODELS.build(stream)
        path = tmp_path / 'resnet18_rgb.pth'
        torch.save(dict(state_dict=unimodal.state_dict()), path)
        backbone = MODELS.build(
            dict(
                type='DualStreamBackbone',
                backbone=stream,
                streams=dict(
                    rgb=dict(init_cfg=dict(type='Pretrained', checkpoint=str(path))))))
    backbone.init_weights()
    for key, value in unimodal.state_dict().items():
        assert torch.equal(backbone.streams['rgb'].state_dict()[key], value), key
    # the same file as the whole model's load_from: refused, pointing at init_cfg
    from mwam_mm.compat import check_checkpoint_fits
    with pytest.raises(CheckpointMismatchError, match='init_cfg'):
        check_checkpoint_fits(backbone, torch.load(path), str(path), allow_partial=True)
    check_checkpoint_fits(backbone, dict(state_dict=backbone.state_dict()), 'own')
