"""tools/test.py, tools/robustness.py and tools/train.py --resume refuse the
checkpoint of another config (run in-process: the tools' own main functions)."""
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.compat import CheckpointMismatchError
from tests.conftest import ROOT
from tests.helpers.configs import tiny_config

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
SUMMARY = (r'(?s)checkpoint .*other_config\.pth does not fit the model '
           r'RGBTSingleStageDetector.*missing: \d+ .*unexpected: \d+ .*'
           r'mis-shaped: \d+ ')


@pytest.fixture(scope='module')
def configs(synthetic_root, tmp_path_factory):
    """The tiny synthetic config, and a checkpoint of another model: other fusion
    (unexpected and missing tensors), other stream width (mis-shaped ones)."""
    tmp = tmp_path_factory.mktemp('ckpt_tools')
    cfg = tiny_config(SYNTHETIC, synthetic_root, str(tmp / 'work'), iters=1)
    config = str(tmp / 'tiny_a.py')
    cfg.dump(config)
    other = tiny_config(SYNTHETIC, synthetic_root, str(tmp / 'other'))
    other.model.backbone.fusion = dict(type='GatedFusion')
    other.model.bbox_head.num_classes = 3
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(other.model)
    checkpoint = str(tmp / 'other_config.pth')
    torch.save(
        dict(meta=dict(epoch=12, iter=600), state_dict=model.state_dict()), checkpoint)
    return dict(config=config, checkpoint=checkpoint, tmp=tmp)


def run_tool(monkeypatch, tool, *args):
    monkeypatch.setattr(sys, 'argv', [tool, *args])
    runpy.run_path(osp.join(ROOT, 'tools', tool), run_name='__main__')


def test_test_tool_refuses_the_checkpoint_of_another_config(configs, monkeypatch):
    with pytest.raises(CheckpointMismatchError, match=SUMMARY):
        run_tool(monkeypatch, 'test.py', configs['config'], configs['checkpoint'],
                 '--work-dir', str(configs['tmp'] / 'test'))


def test_test_tool_loads_partially_when_told(configs, monkeypatch, capsys):
    out = str(configs['tmp'] / 'results.pkl')
    run_tool(monkeypatch, 'test.py', configs['config'], configs['checkpoint'],
             '--work-dir', str(configs['tmp'] / 'partial'), '--out', out,
             '--allow-partial-checkpoint')
    assert osp.isfile(out)


def test_robustness_refuses_the_checkpoint_of_another_config(configs, monkeypatch):
    with pytest.raises(CheckpointMismatchError, match=SUMMARY):
        run_tool(monkeypatch, 'robustness.py', configs['config'], configs['checkpoint'],
                 '--work-dir', str(configs['tmp'] / 'robust'), '--scenarios', 'blank')


def test_train_resume_refuses_it_before_the_optimizer(configs, monkeypatch):
    with pytest.raises(
            CheckpointMismatchError, match=SUMMARY + '.*Resuming needs the checkpoint'):
        run_tool(monkeypatch, 'train.py', configs['config'], '--work-dir',
                 str(configs['tmp'] / 'train'), '--resume', configs['checkpoint'])
    with pytest.raises(ValueError, match='cannot be used with --resume'):
        run_tool(monkeypatch, 'train.py', configs['config'], '--resume',
                 configs['checkpoint'], '--allow-partial-checkpoint')
