"""From the pipeline to the backbone: missing marks reach every model family."""
import copy

import pytest
import torch
from mmengine.structures import BaseDataElement

import mwam_mm  # noqa: F401
from mwam_mm.engine import build_runner
from mwam_mm.evaluation import evaluate_subsets
from mwam_mm.presence import presence_from_data_samples
from tests.helpers.configs import shrink_pipelines, tiny_config
from tests.helpers.layouts import write_mfnet

FAMILIES = {
    'retinanet': 'configs/detection/retinanet_dual-r18_fpn_1xb8-12e_llvip.py',
    'faster-rcnn': 'configs/detection/faster-rcnn_dual-r18_fpn_1xb8-12e_llvip.py',
    'deeplabv3plus': 'configs/segmentation/deeplabv3plus_dual-r18-d8_1xb2-80k_mfnet.py',
    'segformer': 'configs/segmentation/segformer_dual-mit-b0_1xb2-160k_mfnet.py',
}


@pytest.fixture(scope='module')
def mfnet_root(tmp_path_factory):
    return write_mfnet(str(tmp_path_factory.mktemp('mfnet')), num=4)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_a_missing_mark_reaches_the_backbone_in_every_model_family(
        family, synthetic_root, mfnet_root, tmp_path):
    path = FAMILIES[family]
    detection = '/detection/' in path
    cfg = tiny_config(
        path,
        synthetic_root if detection else mfnet_root,
        str(tmp_path),
        iters=1,
        batch_size=2)
    if detection:
        head = cfg.model.roi_head if family == 'faster-rcnn' else cfg.model
        head.bbox_head.num_classes = 2
        for loader in ('train_dataloader', 'test_dataloader', 'val_dataloader'):
            cfg[loader].dataset.metainfo = dict(classes=('person', 'vehicle'))
    shrink_pipelines(cfg)
    runner = build_runner(cfg)
    backbone = runner.model.backbone
    masks = []
    backbone.missing_substitute.register_forward_hook(
        lambda module, args, output: masks.append(args[1].clone()))
    evaluate_subsets(runner, backbone.layout, scenario='missing', subsets=[('rgb', )])
    assert masks, 'the substitute never ran: no mask reached the backbone'
    for mask in masks:
        assert mask.tolist() == [[True, False]] * mask.shape[0]
    masks.clear()
    evaluate_subsets(runner, backbone.layout, scenario='blank', subsets=[('rgb', )])
    assert masks == []  # blank: the model is not told


def sample(missing=None):
    element = BaseDataElement()
    element.set_metainfo(dict(img_shape=(32, 32), pad_shape=(32, 32)))
    if missing is not None:
        element.set_metainfo(dict(missing_modalities=missing))
    return element


def preprocessor(**kwargs):
    from mmengine.registry import MODELS
    return MODELS.build(dict(type='RGBTDetDataPreprocessor', **kwargs))


def presence_of(out, layout):
    return presence_from_data_samples(out['data_samples'], layout)


def test_preprocessor_keeps_the_samples_missing_marks_and_checks_them():
    pre = preprocessor()
    batch = dict(
        inputs=[
            torch.randint(0, 255, (4, 32, 32), dtype=torch.uint8) for _ in range(2)
        ],
        data_samples=[sample(['thermal']), sample()])
    out = pre(batch, training=False)
    assert presence_of(out, pre.layout).tolist() == [[True, False], [True, True]]
    out = pre(dict(batch, data_samples=[sample(), sample([])]), training=False)
    assert out['inputs'].shape[0] == 2
    assert presence_of(out, pre.layout) is None
    with pytest.raises(ValueError, match=r"names \['lidar'\]"):
        pre(dict(batch, data_samples=[sample(['lidar']), sample()]))


def test_preprocessor_feature_dropout_marks_samples_in_training_only():
    torch.manual_seed(0)
    pre = preprocessor(modality_dropout=dict(protocol='subsets', level='feature'))
    images = [torch.randint(0, 255, (4, 32, 32), dtype=torch.uint8) for _ in range(64)]
    plain = preprocessor()
    reference = plain(dict(inputs=images, data_samples=[sample() for _ in images]))
    samples = [sample() for _ in images]
    out = pre(dict(inputs=images, data_samples=samples), training=True)
    torch.testing.assert_close(out['inputs'], reference['inputs'])  # pixels kept
    presence = presence_of(out, pre.layout)
    kept = [tuple(row) for row in presence.tolist()]
    counts = {k: kept.count(k) for k in set(kept)}
    assert set(counts) == {(True, True), (True, False), (False, True)}
    assert all(c >= 10 for c in counts.values()), counts  # ~1/3 each of 64
    for s, row in zip(out['data_samples'], presence.tolist()):
        expected = [n for n, p in zip(('rgb', 'thermal'), row) if not p]
        assert list(s.metainfo.get('missing_modalities', [])) == expected
    out = pre(
        dict(inputs=images, data_samples=[sample() for _ in images]), training=False)
    assert 'missing_modalities' not in out['data_samples'][0].metainfo
    assert presence_of(out, pre.layout) is None


def test_preprocessor_input_dropout_blanks_to_a_black_pixel_and_tells_nothing():
    torch.manual_seed(1)
    pre = preprocessor(
        modality_dropout=dict(protocol='rate', prob=1.0, level='input', fill='zero'))
    black = torch.zeros(4, 32, 32, dtype=torch.uint8)
    reference = preprocessor()(dict(inputs=[black], data_samples=[sample()]))
    images = [torch.randint(1, 255, (4, 32, 32), dtype=torch.uint8) for _ in range(8)]
    out = pre(
        dict(inputs=images, data_samples=[sample() for _ in images]), training=True)
    assert presence_of(out, pre.layout) is None
    layout = pre.layout
    blanked = 0
    for i in range(8):
        for name in layout.names:
            part = out['inputs'][i, layout.channel_slice(name)]
            black_part = reference['inputs'][0, layout.channel_slice(name)]
            if torch.equal(part, black_part):
                blanked += 1
    assert blanked == 8  # prob 1: exactly one modality per sample


def test_pipeline_dropout_levels_and_protocols():
    import numpy as np

    from mwam_mm.datasets import ModalityDropout
    np.random.seed(0)
    img = np.full((8, 8, 4), 200, dtype=np.uint8)
    feature = ModalityDropout(protocol='subsets', level='feature')
    outcomes = []
    for _ in range(300):
        out = feature.transform(dict(img=img.copy(), img_path='a.jpg'))
        assert np.array_equal(out['img'], img)  # pixels kept
        outcomes.append(tuple(out.get('missing_modalities', [])))
    counts = {k: outcomes.count(k) for k in set(outcomes)}
    assert set(counts) == {(), ('rgb', ), ('thermal', )}
    assert all(abs(c / 300 - 1 / 3) < 0.1 for c in counts.values()), counts
    blank = ModalityDropout(protocol='rate', prob=1.0, level='input')
    out = blank.transform(dict(img=img.copy()))
    assert 'missing_modalities' not in out
    dropped = out['dropped_modalities'][0]
    assert (out['img'][..., blank.layout.channel_slice(dropped)] == 0).all()
    with pytest.raises(ValueError, match="unknown protocol 'uniform'"):
        ModalityDropout(protocol='uniform')
    with pytest.raises(ValueError, match="unknown level 'pixel'"):
        ModalityDropout(level='pixel')
    with pytest.raises(KeyError, match="unknown modality name.*'depth'"):
        ModalityDropout(weights=dict(depth=1.0))


def test_a_pipeline_that_marks_missing_must_pack_the_mark(synthetic_root, mmdet_scope):
    from mwam_mm.datasets import LLVIPDataset
    pipeline = [
        dict(type='LoadRGBTImagePair'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='ModalityDropout', protocol='subsets', level='feature'),
        dict(type='PackDetInputs')
    ]
    kwargs = dict(
        data_root=synthetic_root, metainfo=dict(classes=('person', 'vehicle')))
    with pytest.raises(
            ValueError,
            match="LLVIPDataset: the pipeline step "
            "ModalityDropout.*add 'missing_modalities' to its "
            'meta_keys'):
        LLVIPDataset(pipeline=pipeline, **kwargs)
    packed = copy.deepcopy(pipeline)
    packed[-1]['meta_keys'] = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                               'scale_factor', 'missing_modalities')
    dataset = LLVIPDataset(pipeline=packed, **kwargs)
    seen = {
        tuple(dataset[i]['data_samples'].metainfo.get('missing_modalities', ()))
        for i in range(len(dataset))
        for _ in range(6)
    }
    assert ('rgb', ) in seen or ('thermal', ) in seen
