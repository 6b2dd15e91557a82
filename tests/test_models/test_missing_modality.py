"""Known-missing modalities: substitute features, presence-aware fusion, errors."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS, DefaultScope

import mwam_mm  # noqa: F401
from mwam_mm import ModalityLayout
from mwam_mm.presence import presence_mask

SLIM_RESNET = dict(type='ResNet', depth=18, base_channels=8, out_indices=(0, 1, 2, 3))
TINY_MIT = dict(
    type='MixVisionTransformer',
    embed_dims=8,
    num_layers=(1, 1, 1, 1),
    num_heads=(1, 1, 2, 4))
LAYOUT = ModalityLayout.build(None)


@MODELS.register_module(force=True)
class SevenSubstitute(nn.Module):
    """A recognisable substitute: every missing feature becomes 7."""

    def forward(self, outs, presence):
        return {
            name: tuple(torch.full_like(level, 7.0) for level in levels)
            for name, levels in outs.items()
        }


@MODELS.register_module(force=True)
class RecordingFusion(nn.Module):
    """AddFusion that remembers the presence masks it was given."""
    seen = []

    def __init__(self, channels, num_modalities):
        super().__init__()

    def forward(self, feats, presence=None):
        RecordingFusion.seen.append(presence)
        return feats[0] + feats[1]


@MODELS.register_module(force=True)
class MaskBlindFusion(nn.Module):
    """A user's fusion module written before presence masks existed."""

    def __init__(self, channels, num_modalities):
        super().__init__()

    def forward(self, feats):
        return feats[0] + feats[1]


def build(cfg, scope='mmdet'):
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg)


def backbone(fusion='AddFusion', substitute=None, stream=SLIM_RESNET, scope='mmdet'):
    cfg = dict(type='DualStreamBackbone', backbone=stream, fusion=dict(type=fusion))
    if substitute is not None:
        cfg['missing_substitute'] = dict(type=substitute)
    model = build(cfg, scope)
    model.eval()
    return model


PRESENCE = torch.tensor([[True, True], [True, False], [False, True]])


@pytest.mark.parametrize('substitute', [None, 'SevenSubstitute'])
def test_missing_features_are_exactly_the_substitute_and_others_untouched(substitute):
    model = backbone(substitute=substitute)
    x = torch.randn(3, 4, 64, 64)
    own = model.forward_streams(x)
    replaced = model.replace_missing(own, PRESENCE)
    fill = 0.0 if substitute is None else 7.0
    for m, name in enumerate(LAYOUT.names):
        for level_own, level_new in zip(own[name], replaced[name]):
            for i in range(3):
                if PRESENCE[i, m]:
                    assert torch.equal(level_new[i], level_own[i])
                else:
                    assert torch.equal(level_new[i],
                                       torch.full_like(level_own[i], fill))


def test_add_fusion_with_a_missing_modality_is_the_present_stream_alone():
    model = backbone()
    x = torch.randn(3, 4, 64, 64)
    own = model.forward_streams(x)
    fused = model(x, presence=PRESENCE)
    for level, fused_level in enumerate(fused):
        torch.testing.assert_close(fused_level[0],
                                   own['rgb'][level][0] + own['thermal'][level][0])
        torch.testing.assert_close(fused_level[1], own['rgb'][level][1])
        torch.testing.assert_close(fused_level[2], own['thermal'][level][2])


def test_gated_fusion_gives_a_missing_modality_no_weight():
    model = backbone('GatedFusion', substitute='SevenSubstitute')
    x = torch.randn(3, 4, 64, 64)
    own = model.forward_streams(x)
    fused = model(x, presence=PRESENCE)
    for level, fused_level in enumerate(fused):
        torch.testing.assert_close(fused_level[1], own['rgb'][level][1])
        torch.testing.assert_close(fused_level[2], own['thermal'][level][2])
        # both present: a mix, not one of them
        assert not torch.allclose(fused_level[0], own['rgb'][level][0])


def test_fusion_modules_receive_the_mask_and_none_when_all_present():
    model = backbone('RecordingFusion')
    RecordingFusion.seen.clear()
    x = torch.randn(3, 4, 64, 64)
    model(x, presence=PRESENCE)
    assert len(RecordingFusion.seen) == 4  # one per level
    assert all(torch.equal(p, PRESENCE) for p in RecordingFusion.seen)
    RecordingFusion.seen.clear()
    model(x, presence=torch.ones(3, 2, dtype=torch.bool))
    model(x)
    assert RecordingFusion.seen == [None] * 8


def test_a_mask_of_another_batch_is_refused():
    model = backbone('RecordingFusion')
    with pytest.raises(
            ValueError,
            match=r'presence mask has shape \(3, 2\), '
            r'the batch needs \(2, 2\)'):
        model(torch.randn(2, 4, 64, 64), presence=PRESENCE)


def test_no_state_outlives_a_call():
    """The mask is an argument: a call without one treats every modality as
    present, whatever the call before had."""
    model = backbone('RecordingFusion')
    RecordingFusion.seen.clear()
    x = torch.randn(3, 4, 64, 64)
    model(x, presence=PRESENCE)
    model(x)
    assert torch.equal(RecordingFusion.seen[0], PRESENCE)
    assert RecordingFusion.seen[4:] == [None] * 4


def test_missing_streams_still_run_and_get_gradients():
    """DDP needs every parameter in the graph, also when a modality is missing
    from every sample of the batch."""
    model = backbone()
    model.train()
    x = torch.randn(2, 4, 64, 64)
    rgb_only = torch.tensor([[True, False], [True, False]])
    sum(level.sum() for level in model(x, presence=rgb_only)).backward()
    thermal = list(model.streams['thermal'].parameters())
    assert all(p.grad is not None for p in thermal)
    assert all(torch.count_nonzero(p.grad) == 0 for p in thermal)
    assert any(
        torch.count_nonzero(p.grad) > 0 for p in model.streams['rgb'].parameters())


def test_a_transformer_stream_takes_the_mask_too():
    model = backbone('GatedFusion', stream=TINY_MIT, scope='mmseg')
    x = torch.randn(3, 4, 64, 64)
    own = model.forward_streams(x)
    fused = model(x, presence=PRESENCE)
    torch.testing.assert_close(fused[-1][1], own['rgb'][-1][1])


def test_bad_masks_and_fusions_are_clear_errors():
    model = backbone()
    x = torch.randn(2, 4, 64, 64)
    with pytest.raises(ValueError, match='a sample has every modality missing'):
        model(x, presence=torch.tensor([[True, True], [False, False]]))
    with pytest.raises(
            ValueError,
            match=r"names \['depth'\], which are not "
            r"modalities of the layout \['rgb', 'thermal'\]"):
        presence_mask([['depth'], []], LAYOUT)
    with pytest.raises(ValueError, match='marks every modality missing'):
        presence_mask([['rgb', 'thermal']], LAYOUT)
    assert presence_mask([[], None], LAYOUT) is None
    blind = backbone('MaskBlindFusion')
    blind(x)  # fine while every modality is present
    with pytest.raises(
            TypeError,
            match='fusion module MaskBlindFusion cannot take '
            'a presence mask.*add `presence=None`'):
        blind(x, presence=torch.tensor([[True, True], [True, False]]))
