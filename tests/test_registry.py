"""The same unscoped names resolve under default_scope='mmdet' and 'mmseg'."""
import pytest
from mmengine.registry import (DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, METRICS, MODELS,
                               TRANSFORMS, DefaultScope)

import mwam_mm  # noqa: F401
from mwam_mm.registry_utils import nearest_names

OURS = {
    MODELS: [
        'DualStreamBackbone', 'RGBTDetDataPreprocessor', 'AddFusion',
        'ConcatConvFusion', 'GatedFusion', 'ZeroSubstitute', 'RGBTSingleStageDetector',
        'RGBTTwoStageDetector', 'RGBTEncoderDecoder', 'CrossModalProxy',
        'LowRankAdapter'
    ],
    HOOKS: [
        'MWAMHook', 'BranchGradNormHook', 'CheckpointMatchHook', 'OGMGEHook',
        'RSCMDHook', 'BTWHook', 'BranchWeightHook'
    ],
    TRANSFORMS: [
        'LoadRGBTImagePair', 'PerModality', 'ModalityDropout', 'BlankModality',
        'ModalityGaussianNoise', 'ModalityGaussianBlur', 'ModalityLowLight',
        'ModalityOverExposure', 'ModalityShift'
    ],
    DATASETS: ['LLVIPDataset', 'FLIRAlignedDataset', 'M3FDDataset', 'KAISTDataset'],
    METRICS: ['KAISTMissRate', 'SplitMetric'],
    DATA_SAMPLERS: ['ResumableSampler'],
    LOOPS: ['ResumableEpochBasedTrainLoop'],
}


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_our_names_resolve_in_both_toolboxes(scope):
    with DefaultScope.overwrite_default_scope(scope):
        for registry, names in OURS.items():
            # the lookup a build does: the default scope's registry, then parents
            with registry.switch_scope_and_registry(None) as scoped:
                assert scoped.scope == scope
                for name in names:
                    assert scoped.get(name) is not None, (scope, registry.name, name)
        # and the toolbox's own names still resolve next to ours
        own = 'RetinaNet' if scope == 'mmdet' else 'EncoderDecoder'
        with MODELS.switch_scope_and_registry(None) as scoped:
            assert scoped.get(own) is not None


def test_a_component_built_inside_ours_resolves_in_the_configs_scope():
    cfg = dict(
        type='DualStreamBackbone',
        backbone=dict(
            type='MixVisionTransformer',
            embed_dims=8,
            num_layers=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 4)))
    with DefaultScope.overwrite_default_scope('mmseg'):
        backbone = MODELS.build(cfg)
    assert type(backbone.streams['rgb']).__module__.startswith('mmseg')
    with DefaultScope.overwrite_default_scope('mmdet'):
        backbone = MODELS.build(dict(cfg, backbone=dict(type='ResNet', depth=18)))
    assert type(backbone.streams['rgb']).__module__.startswith('mmdet')


def test_nearest_names():
    assert nearest_names(HOOKS, 'MWAMHok', 'mmdet')[0] == 'MWAMHook'
    assert 'LoadRGBTImagePair' in nearest_names(TRANSFORMS, 'LoadRGBTPair', 'mmseg')
