import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm import ModalityLayout

SLIM_RESNET = dict(type='ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3))
TINY_SWIN = dict(
    type='SwinTransformer',
    embed_dims=16,
    depths=(1, 1, 1, 1),
    num_heads=(1, 2, 4, 8),
    window_size=4,
    out_indices=(0, 1, 2, 3))
TINY_MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=(1, 1, 1, 1),
    num_heads=(1, 1, 2, 4))


def build(scope, cfg):
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


@pytest.mark.parametrize(
    'scope,stream,channels',
    [
        ('mmdet', SLIM_RESNET, [8, 16, 32, 64]),
        ('mmdet', TINY_SWIN, [16, 32, 64, 128]),
        ('mmseg', TINY_MIT, [8, 8, 16, 32]),  # embed_dims * num_heads
        ('mmseg', dict(type='ResNetV1c', depth=18, base_channels=8,
                       stem_channels=8), [8, 16, 32, 64]),
    ])
@pytest.mark.parametrize('fusion', ['AddFusion', 'ConcatConvFusion', 'GatedFusion'])
def test_streams_fusion_and_outputs(scope, stream, channels, fusion):
    backbone = build(
        scope,
        dict(type='DualStreamBackbone', backbone=stream, fusion=dict(type=fusion)))
    assert backbone.out_channels == channels
    branches = backbone.modality_branches()
    assert list(branches) == ['rgb', 'thermal']
    first = next(iter(branches['thermal'].modules()))
    assert first is branches['thermal']
    x = torch.randn(2, 4, 64, 64)
    outs = backbone(x)
    assert [o.shape[1] for o in outs] == channels
    assert outs[0].shape[0] == 2
    # each stream sees only its modality's channels
    streams = backbone.forward_streams(x)
    rgb_only = backbone.forward_streams(torch.cat([x[:, :3], x[:, 3:] * 0 + 5], 1))
    torch.testing.assert_close(streams['rgb'][0], rgb_only['rgb'][0])


def test_stream_in_channels_follow_the_layout():
    modalities = [
        dict(name='rgb', channels=3, bgr_to_rgb=True),
        dict(name='thermal', channels=3)
    ]
    backbone = build(
        'mmdet',
        dict(type='DualStreamBackbone', backbone=SLIM_RESNET, modalities=modalities))
    assert backbone.streams['thermal'].conv1.in_channels == 3
    default = build('mmdet', dict(type='DualStreamBackbone', backbone=SLIM_RESNET))
    assert default.streams['thermal'].conv1.in_channels == 1
    assert default.layout == ModalityLayout.build(None)


def test_per_stream_overrides():
    backbone = build(
        'mmdet',
        dict(
            type='DualStreamBackbone',
            backbone=SLIM_RESNET,
            streams=dict(thermal=dict(frozen_stages=1, init_cfg=dict(type='Kaiming')))))
    backbone.train()
    assert not any(p.requires_grad
                   for p in backbone.streams['thermal'].layer1.parameters())
    assert all(p.requires_grad for p in backbone.streams['rgb'].layer1.parameters())
    assert backbone.streams['thermal'].init_cfg == dict(type='Kaiming')


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match='in_channels=3.*1 channel'):
        build(
            'mmdet',
            dict(type='DualStreamBackbone', backbone=dict(SLIM_RESNET, in_channels=3)))
    with pytest.raises(KeyError, match="unknown modality name.*'depth'"):
        build(
            'mmdet',
            dict(
                type='DualStreamBackbone',
                backbone=SLIM_RESNET,
                streams=dict(depth=dict())))
    backbone = build('mmdet', dict(type='DualStreamBackbone', backbone=SLIM_RESNET))
    with pytest.raises(ValueError, match='expected 4 stacked channels'):
        backbone(torch.randn(1, 3, 32, 32))


def test_stream_types_resolve_in_the_configs_scope_with_nearest_names():
    # MixVisionTransformer is mmseg's: found under mmseg, not under mmdet
    build('mmseg', dict(type='DualStreamBackbone', backbone=TINY_MIT))
    with pytest.raises(
            KeyError,
            match='MixVisionTransformer is not in the '
            'mmdet::model registry.*Nearest registered names'):
        build('mmdet', dict(type='DualStreamBackbone', backbone=TINY_MIT))
    with pytest.raises(KeyError, match='Nearest registered names: .*ResNet'):
        build('mmdet', dict(type='DualStreamBackbone', backbone=dict(type='ResNett')))


def test_stream_initialised_from_a_local_checkpoint(tmp_path):
    source = build('mmdet', dict(SLIM_RESNET, in_channels=3))
    path = tmp_path / 'r18_slim.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    backbone = build(
        'mmdet',
        dict(
            type='DualStreamBackbone',
            backbone=SLIM_RESNET,
            streams=dict(
                rgb=dict(init_cfg=dict(type='Pretrained', checkpoint=str(path))))))
    backbone.init_weights()
    for key, value in source.state_dict().items():
        torch.testing.assert_close(backbone.streams['rgb'].state_dict()[key], value)
    assert not torch.equal(backbone.streams['thermal'].layer1[0].conv1.weight,
                           source.layer1[0].conv1.weight)


def test_auxiliary_heads_report_per_modality_losses(mmdet_scope, synthetic_root):
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile('configs/detection/'
                          'retinanet_dual-r18_fpn_aux_1xb8-12e_llvip_mwam-hybrid.py')
    cfg.model.backbone.backbone.base_channels = 8
    cfg.model.neck.in_channels = [8, 16, 32, 64]
    cfg.model.bbox_head.num_classes = 2
    model = MODELS.build(cfg.model)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.pop('batch_sampler')
    loader.dataset.update(
        data_root=synthetic_root, metainfo=dict(classes=('person', 'vehicle')))
    batch = next(iter(Runner.build_dataloader(loader)))
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    for name in ('rgb', 'thermal'):
        assert f'loss_cls_{name}' in losses and f'loss_bbox_{name}' in losses
    assert 'loss_cls' in losses
    model.aux_loss_weight = 0.5
    halved = model(**data, mode='loss')
    torch.testing.assert_close(
        sum(halved['loss_cls_rgb']),
        sum(losses['loss_cls_rgb']) * 0.5)
    plain = MODELS.build(dict(cfg.model, aux_loss_weight=0.0))
    assert plain.aux_heads is None
    assert set(plain(**plain.data_preprocessor(batch, True), mode='loss')) == \
        {'loss_cls', 'loss_bbox'}
