"""tools/train.py --amp on a machine without CUDA: bfloat16 CPU autocast."""
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from tests.helpers.configs import tiny_config
from tests.helpers.scripts import load_script

SYNTHETIC = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'

needs_cpu_only = pytest.mark.skipif(
    torch.cuda.is_available(), reason='--amp keeps mmengine\'s AmpOptimWrapper on CUDA')


def train_tool():
    """tools/train.py as a module (its globals can be patched)."""
    return load_script('tools/train.py', '_amp')


@needs_cpu_only
def test_train_amp_on_cpu_runs_under_bfloat16_autocast(synthetic_root, tmp_path,
                                                       monkeypatch):
    work = str(tmp_path / 'work')
    cfg = tiny_config(SYNTHETIC, synthetic_root, work, iters=2)
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    tool = train_tool()
    built, dtypes = {}, []

    def build_and_watch(cfg):
        runner = real_build(cfg)
        built['runner'] = runner
        # the first convolution's output dtype tells whether autocast was on
        conv = next(m for m in runner.model.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
        return runner

    real_build = tool.build_runner
    monkeypatch.setattr(tool, 'build_runner', build_and_watch)
    monkeypatch.setattr(sys, 'argv', ['train.py', config, '--work-dir', work, '--amp'])
    tool.main()

    runner = built['runner']
    wrapper = runner.optim_wrapper
    assert type(wrapper).__name__ == 'CPUAmpOptimWrapper'
    assert wrapper.cast_dtype == torch.bfloat16
    assert runner.iter == 2 and osp.isfile(osp.join(work, 'iter_2.pth'))
    # training forwards ran in bfloat16 (the validation at the end does not)
    assert dtypes[:2] == [torch.bfloat16, torch.bfloat16]
    # the parameters stay float32
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'CPUAmpOptimWrapper' in log and 'bfloat16' in log


@needs_cpu_only
def test_configure_amp_on_cpu_sets_the_bfloat16_wrapper_and_drops_loss_scale():
    from mwam_mm.engine.cpu_amp import configure_amp
    cfg = Config(
        dict(
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='SGD', lr=0.01),
                loss_scale='dynamic',
                clip_grad=dict(max_norm=1.0))))
    assert configure_amp(cfg) == 'bfloat16'
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=1.0)


def test_cpu_amp_wrapper_autocasts_steps_and_ignores_a_loss_scaler_state():
    from mwam_mm.engine.cpu_amp import CPUAmpOptimWrapper
    model = nn.Linear(4, 2)
    wrapper = CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert isinstance(wrapper, OptimWrapper)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.ones(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    # a float16 GPU run's checkpoint: its GradScaler state has nowhere to go
    state = dict(wrapper.state_dict(), loss_scaler={'scale': 65536.0})
    wrapper.load_state_dict(state)
    with pytest.raises(ValueError, match='supports only bfloat16'):
        CPUAmpOptimWrapper(
            dtype='float16', optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
