"""Every config under configs/ loads, builds, and (detection) trains and tests on
generated data in its dataset's layout, so no config can rot."""
import copy
import glob
import os.path as osp
import re

import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm.datasets import make_synthetic_rgbt
from mwam_mm.engine import build_runner
from mwam_mm.evaluation import evaluate_subsets
from tests.conftest import ROOT
from tests.helpers.configs import shrink_pipelines, tiny_config
from tests.helpers.layouts import (write_flir, write_fmb, write_kaist, write_m3fd,
                                   write_mfnet, write_pst900)

CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '/_base_/' not in p)
METHODS = sorted(glob.glob(osp.join(ROOT, 'configs', '_base_', 'methods', '*.py')))


def rel(path):
    return osp.relpath(path, ROOT)


def test_configs_are_discovered():
    names = [rel(p) for p in CONFIGS]
    assert len(names) >= 28
    # every method overlay is found too (and checked by the overlay tests below)
    overlays = {osp.basename(p)[:-len('.py')] for p in METHODS}
    assert {
        'moddrop', 'moddrop-input', 'mwam', 'mwam-update', 'mwam-robust', 'ogm-ge',
        'rsc-md', 'rsc-view', 'btw', 'cmpt', 'cmpt-frozen', 'unimodal-rgb',
        'unimodal-thermal'
    } <= overlays
    for dataset in ('mfnet', 'pst900', 'fmb'):
        for model in ('deeplabv3plus_dual-r18-d8_1xb2-80k',
                      'segformer_dual-mit-b0_1xb2-160k'):
            plain = f'configs/segmentation/{model}_{dataset}.py'
            assert plain in names
            assert plain.replace('.py', '_mwam.py') in names
    for dataset in ('llvip', 'flir_aligned', 'm3fd'):
        for detector in ('retinanet', 'faster-rcnn'):
            plain = f'configs/detection/{detector}_dual-r18_fpn_1xb8-12e_{dataset}.py'
            assert plain in names
            for suffix in ('_mwam', '_moddrop', '_moddrop-mwam'):
                assert plain.replace('.py', f'{suffix}.py') in names
    for detector in ('retinanet', 'faster-rcnn'):
        plain = f'configs/detection/{detector}_dual-r18_fpn_1xb8-12e_kaist.py'
        assert {plain, plain.replace('.py', '_mwam.py')} <= set(names)
    synthetic = 'configs/detection/retinanet_dual-r18-slim_fpn_1xb8-12e_synthetic.py'
    assert synthetic.replace('.py', '_cmpt-frozen.py') in names
    # the segmentation family of the benchmark has a leaf per method variant
    synthetic_seg = ('configs/segmentation/'
                     'deeplabv3plus_dual-r18-slim-d8_1xb8-12e_synthetic.py')
    for suffix in ('', '_moddrop', '_moddrop-mwam', '_mwam', '_ogm-ge', '_rsc-md',
                   '_btw', '_cmpt', '_rsc-view', '_unimodal-rgb', '_unimodal-thermal'):
        assert synthetic_seg.replace('.py', f'{suffix}.py') in names
    deeplab = 'configs/segmentation/deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py'
    segformer = 'configs/segmentation/segformer_dual-mit-b0_1xb2-160k_mfnet.py'
    for plain in (synthetic, deeplab, segformer):
        for suffix in ('_moddrop', '_moddrop-mwam', '_btw', '_cmpt'):
            assert plain.replace('.py', f'{suffix}.py') in names
    gradient_level = [synthetic, deeplab] + [
        f'configs/detection/{detector}_dual-r18_fpn_1xb8-12e_{dataset}.py'
        for dataset in ('llvip', 'flir_aligned', 'm3fd')
        for detector in ('retinanet', 'faster-rcnn')
    ]
    for plain in gradient_level:
        for suffix in ('_ogm-ge', '_rsc-md'):
            assert plain.replace('.py', f'{suffix}.py') in names
    for dataset in ('llvip', 'flir_aligned', 'm3fd'):
        plain = f'configs/detection/retinanet_dual-r18_fpn_1xb8-12e_{dataset}.py'
        for suffix in ('_btw', '_cmpt'):
            assert plain.replace('.py', f'{suffix}.py') in names
    for suffix in ('_unimodal-rgb', '_unimodal-thermal', '_rsc-view'):
        assert synthetic.replace('.py', f'{suffix}.py') in names
    # rsc-view for every model family: both detectors and both segmentors
    for plain in gradient_level[1:] + [segformer]:
        assert plain.replace('.py', '_rsc-view.py') in names


@pytest.mark.parametrize('path', METHODS, ids=rel)
def test_method_overlay_is_hooks_and_a_model_change_used_by_a_leaf(path):
    """A method overlay sets keys no family config has (configs/_base_/methods/
    README.md), and some leaf config inherits it."""
    overlay = Config.fromfile(path)
    assert set(overlay) and set(overlay) <= {'custom_hooks', 'method_model'}
    base = f"'../_base_/methods/{osp.basename(path)}'"
    assert any(base in open(p).read() for p in CONFIGS)


@pytest.mark.parametrize('path', CONFIGS, ids=rel)
def test_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    assert 'mwam_mm' in cfg.custom_imports['imports']
    # an overlay's change to the model is merged into it, not left beside it
    assert 'method_model' not in cfg
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(copy.deepcopy(cfg.model))  # detectors edit it
        assert hasattr(model.backbone, 'modality_branches')
        for loader in ('train_dataloader', 'test_dataloader'):
            Compose(cfg[loader].dataset.pipeline)
    name = osp.basename(path)
    if '_mwam' in name or name.endswith('_moddrop-mwam.py'):
        assert [h['type'] for h in cfg.custom_hooks] == ['MWAMHook']
        base = re.sub(r'[_-]mwam(-\w+)?\.py$', '.py', path)
        if osp.exists(base):  # the variant differs only by the hook
            assert cfg.model == Config.fromfile(base).model
    method = re.search(
        r'_(ogm-ge|rsc-md|rsc-view|btw|cmpt|unimodal-(rgb|thermal))\.py$', name)
    if method:  # each method's variant differs from its base by the method only
        base = Config.fromfile(
            osp.join(osp.dirname(path), name[:method.start()] + '.py'))
        hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
        model, expected = copy.deepcopy(cfg.model), copy.deepcopy(base.model)
        if method.group(1) == 'ogm-ge':
            assert hooks == ['OGMGEHook']
        elif method.group(1) == 'rsc-md':
            assert hooks == ['RSCMDHook'] and model.pop('aux_loss_weight') > 0
        elif method.group(1) == 'rsc-view':
            assert not hooks and model.pop('aux_input') == 'view'
            assert model.pop('aux_heads') == 'shared' and model.pop('aux_loss_weight')
        elif method.group(1) == 'btw':
            assert hooks == ['BTWHook']
        elif method.group(1) == 'cmpt':
            assert not hooks
            proxy = model.backbone.pop('missing_substitute')
            assert proxy['type'] == 'CrossModalProxy'
            dropout = model.data_preprocessor.pop('modality_dropout')
            assert dropout['level'] == 'feature'
            expected.backbone.pop('missing_substitute', None)
        else:
            assert not hooks
            ignored = model.backbone.pop('ignore_modalities')
            assert ignored == ['thermal' if name.endswith('rgb.py') else 'rgb']
        assert model == expected
    if re.search(r'_moddrop(-input)?\.py$', name):
        base = Config.fromfile(re.sub(r'_moddrop(-input)?\.py$', '.py', path))
        dropout = cfg.model.data_preprocessor.pop('modality_dropout')
        assert cfg.model == base.model  # the variant differs only by dropout
        expected = 'input' if name.endswith('-input.py') else 'feature'
        assert dropout['level'] == expected


@pytest.fixture(scope='module')
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp('layouts')
    llvip = str(root / 'llvip')
    make_synthetic_rgbt(
        llvip,
        seed=1,
        num_train=4,
        num_test=2,
        width=96,
        height=80,
        classes=('person', ))
    synthetic = str(root / 'synthetic')
    make_synthetic_rgbt(synthetic, seed=2, num_train=4, num_test=2, width=96, height=80)
    synthetic_seg = str(root / 'synthetic_seg')
    make_synthetic_rgbt(
        synthetic_seg,
        seed=2,
        num_train=4,
        num_test=2,
        width=96,
        height=80,
        task='segmentation')
    return dict(
        llvip=llvip,
        synthetic=synthetic,
        synthetic_seg=synthetic_seg,
        flir_aligned=write_flir(str(root / 'flir'), num=4),
        m3fd=write_m3fd(str(root / 'm3fd'), num=4),
        kaist=write_kaist(str(root / 'kaist')),
        mfnet=write_mfnet(str(root / 'mfnet')),
        pst900=write_pst900(str(root / 'pst900')),
        fmb=write_fmb(str(root / 'fmb')))


DETECTION = [p for p in CONFIGS if '/detection/' in p]


def stream_checkpoints_from_references(cfg: Config, path: str, tmp_path) -> None:
    """A leaf whose streams start from its unimodal references' checkpoints
    (``_cmpt-frozen``) gets freshly built references, saved: their streams must
    load by the leaf's prefixes."""
    streams = cfg.model.backbone.get('streams') or {}
    for modality, stream in streams.items():
        init = stream.get('init_cfg') or {}
        if init.get('type') != 'Pretrained':
            continue
        reference = re.sub(r'_cmpt-frozen\.py$', f'_unimodal-{modality}.py', path)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(copy.deepcopy(Config.fromfile(reference).model))
        checkpoint = str(tmp_path / f'{modality}.pth')
        torch.save(dict(state_dict=model.state_dict()), checkpoint)
        init['checkpoint'] = checkpoint


@pytest.mark.parametrize('path', DETECTION, ids=rel)
def test_detection_config_trains_and_tests_on_generated_data(path, layouts, tmp_path):
    dataset = next(
        d for d in ('flir_aligned', 'm3fd', 'llvip', 'kaist', 'synthetic')
        if d in osp.basename(path))
    # the same pipeline steps at a small scale: the real configs resize to 640x512
    # no checkpoint: a real config's is hundreds of MB, and 70 of them fill a disk
    cfg = shrink_pipelines(
        tiny_config(
            path,
            layouts[dataset],
            str(tmp_path),
            iters=2,
            default_hooks=dict(checkpoint=None)))
    stream_checkpoints_from_references(cfg, path, tmp_path)
    runner = build_runner(cfg)
    runner.train()
    metrics = runner.test()
    key = ('kaist/MR_reasonable'
           if cfg.test_evaluator.get('type') == 'KAISTMissRate' else 'pascal_voc/mAP')
    assert key in metrics
    assert 0.0 <= metrics[key] <= 1.0


SEGMENTATION = [p for p in CONFIGS if '/segmentation/' in p]


@pytest.mark.parametrize('path', SEGMENTATION, ids=rel)
def test_segmentation_config_trains_tests_and_blanks_on_generated_data(
        path, layouts, tmp_path):
    name = osp.basename(path)
    dataset = 'synthetic_seg' if 'synthetic' in name else next(
        d for d in ('mfnet', 'pst900', 'fmb') if d in name)
    # batch 2: DeepLabV3+'s image pooling normalises a 1x1 map over the batch
    cfg = shrink_pipelines(
        tiny_config(
            path,
            layouts[dataset],
            str(tmp_path),
            iters=1,
            batch_size=2,
            default_hooks=dict(checkpoint=None)))
    runner = build_runner(cfg)
    runner.train()
    metric, scores = evaluate_subsets(runner, runner.model.backbone.layout)
    assert metric == 'mIoU'
    assert list(scores) == ['rgb+thermal', 'rgb', 'thermal']
    assert all(0.0 <= v <= 100.0 for v in scores.values())
