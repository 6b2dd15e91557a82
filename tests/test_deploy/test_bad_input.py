"""Bad input to the export and to the ONNX Runtime backend: clear errors that
name the module, the input, the expected and the given."""
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

from mwam_mm.apis import inference_rgbt, init_rgbt_model
from mwam_mm.deploy import ExportError, ONNXRuntimeRGBTModel, export_onnx
from mwam_mm.models import AddFusion
from tests.conftest import ROOT
from tests.test_deploy.conftest import LLVIP_PAIR, load_tool

SYNTHETIC = (f'{ROOT}/configs/detection/'
             'retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py')


@MODELS.register_module(force=True)
class DataDependentFusion(AddFusion):
    """Sums the modalities, or takes the first when it is bright: a Python
    branch on a tensor's value, which no graph can hold."""

    def forward(self, feats, presence=None):
        if feats[0].mean() > 0:
            return feats[0]
        return super().forward(feats, presence)


def test_a_module_that_cannot_be_exported_is_named(tmp_path):
    cfg = Config.fromfile(SYNTHETIC)
    cfg.model.backbone.fusion = dict(type='DataDependentFusion')
    model = init_rgbt_model(cfg)
    with pytest.raises(ExportError) as error:
        export_onnx(model, str(tmp_path / 'model.onnx'), verify=False)
    message = str(error.value)
    assert 'the module backbone.fusions.0 (DataDependentFusion) cannot be exported' \
        in message
    assert 'Replace it with layers made of standard PyTorch operators' in message
    assert not (tmp_path / 'model.json').exists()


def test_the_tool_reports_it_without_a_traceback(tmp_path, capsys):
    cfg = Config.fromfile(SYNTHETIC)
    cfg.model.backbone.fusion = dict(type='DataDependentFusion')
    config = str(tmp_path / 'cfg.py')
    cfg.dump(config)
    model = init_rgbt_model(cfg)
    torch.save(dict(state_dict=model.state_dict()), str(tmp_path / 'w.pth'))
    tool = load_tool('tools/deploy/export_onnx.py')
    with pytest.raises(SystemExit, match='export_onnx: the module backbone.fusions.0'):
        tool.main([config, str(tmp_path / 'w.pth'), '--out', str(tmp_path / 'm.onnx')])
    with pytest.raises(SystemExit):
        tool.main([config, str(tmp_path / 'w.pth'), '--out', str(tmp_path / 'm.pt')])
    assert 'must end in .onnx' in capsys.readouterr().err


def test_an_input_size_the_preprocessor_would_change_is_refused():
    model = init_rgbt_model(SYNTHETIC)
    with pytest.raises(
            ValueError, match=r'pads such an image to 128x160.*e\.g\. '
            r'128 160'):
        export_onnx(model, '/nonexistent/x.onnx', shape=(100, 150))


@pytest.fixture(scope='module')
def ort_model(exported_detector):
    return ONNXRuntimeRGBTModel(exported_detector['onnx'])


def feeds(**changes):
    base = dict(
        image=np.zeros((1, 4, 128, 160), np.float32),
        image_shape=np.array([[128, 160]], np.int64),
        scale_factor=np.ones((1, 2), np.float32),
        presence=np.ones((1, 2), bool))
    base.update(changes)
    return base


def test_inputs_of_the_wrong_size_channels_or_mask_shape_are_named(ort_model):
    # a square pair: the pipeline gives 128x128, the graph takes 128x160
    square = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError) as error:
        inference_rgbt(ort_model, square, square[..., 0])
    assert "input 'image' must be Nx4x128x160 float32, got 1x4x128x128" in \
        str(error.value)
    assert '--shape 128 128' in str(error.value)
    cases = {
        'image': (np.zeros((1, 3, 128, 160), np.float32),
                  "'image' must be Nx4x128x160 float32, got 1x3x128x160 float32"),
        'presence': (np.ones((1, 3),
                             bool), "'presence' must be Nx2 bool, got 1x3 bool"),
        'scale_factor': (np.ones(
            (1, 2), np.float64), "'scale_factor' must be Nx2 float32, got 1x2 float64"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            ort_model.run(feeds(**{name: value}))
    values = {
        'presence': (np.zeros(
            (1, 2), bool), "'presence' marks every camera the model uses missing in "
                     r'sample\(s\) \[0\]'),
        'image_shape':
        (np.array([[129, 160]],
                  np.int64), r"'image_shape' of sample 0 is \[129, 160\]; each must be "
         'a .* within the 128x160 input'),
        'scale_factor': (np.zeros((1, 2),
                                  np.float32), "'scale_factor' must be positive"),
    }
    for name, (value, message) in values.items():
        with pytest.raises(ValueError, match=message):
            ort_model.run(feeds(**{name: value}))
    partial = feeds()
    partial.pop('presence')
    with pytest.raises(
            ValueError,
            match=r"takes the inputs \['image', 'image_shape', "
            r"'presence', 'scale_factor'\], got \['image'"):
        ort_model.run(partial)


def test_a_graph_without_its_description_or_a_checkpoint_is_refused(
        exported_detector, tmp_path):
    alone = str(tmp_path / 'alone.onnx')
    shutil.copy(exported_detector['onnx'], alone)
    with pytest.raises(FileNotFoundError, match=r'alone\.json not found.*export_onnx'):
        ONNXRuntimeRGBTModel(alone)
    (tmp_path / 'alone.json').write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match='not a description written by the mwam_mm'):
        ONNXRuntimeRGBTModel(alone)
    (tmp_path / 'alone.json').write_text('{"format": "mwam_mm-onnx", "version": 0}')
    with pytest.raises(
            ValueError,
            match='version 0 of the description; this '
            'mwam_mm reads version 1: export again'):
        ONNXRuntimeRGBTModel(alone)
    (tmp_path / 'alone.json').write_text('{"format": "mwam_mm-onnx", "version": 1}')
    with pytest.raises(ValueError, match=r"the description lacks \['task', "):
        ONNXRuntimeRGBTModel(alone)
    with pytest.raises(ValueError, match=r'give its \.onnx file as the checkpoint'):
        init_rgbt_model(
            exported_detector['config'],
            exported_detector['checkpoint'],
            backend='onnxruntime')
    with pytest.raises(ValueError, match="backend 'tensorrt'"):
        init_rgbt_model(exported_detector['config'], backend='tensorrt')


@pytest.mark.parametrize('option,message', [
    ({
        'model.test_cfg.score_thr': 0.5
    }, r"model.test_cfg .* is not the one .*fixed at "
     'export'),
    ({
        'model.data_preprocessor.mean': dict(thermal=[100.0])
    }, r'data preprocessor has mean \[.*100.0\], .* was exported with'),
])
def test_a_config_with_other_fixed_settings_is_refused(exported_detector, option,
                                                       message):
    with pytest.raises(ValueError, match=message):
        ONNXRuntimeRGBTModel(
            exported_detector['onnx'], exported_detector['config'], cfg_options=option)


def test_a_config_of_another_layout_is_refused(exported_detector):
    cfg = Config.fromfile(exported_detector['config'])
    cfg.model.data_preprocessor.modalities = [
        dict(name='rgb', channels=3),
        dict(name='thermal', channels=3)
    ]
    with pytest.raises(
            ValueError, match='is not the one .*retinanet.onnx was '
            'exported with'):
        ONNXRuntimeRGBTModel(exported_detector['onnx'], cfg)
    assert inference_rgbt(ONNXRuntimeRGBTModel(exported_detector['onnx']),
                          *LLVIP_PAIR).pred_instances
