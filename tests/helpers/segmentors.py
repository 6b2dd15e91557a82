"""Tiny RGB-T segmentors for the model tests: the real DeepLabV3+ and SegFormer
base configs at a small width, a 64x64 batch, the loss references, and the
test modules registered for them (import this module before building a config
that names them)."""
import copy
import functools

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import PixelData
from mmseg.models.decode_heads import FCNHead
from mmseg.registry import MODELS as SEG_MODELS
from mmseg.structures import SegDataSample

import mwam_mm  # noqa: F401
from mwam_mm.models import ZeroSubstitute
from tests.conftest import ROOT

DEEPLAB = 'deeplabv3plus_dual-r18-d8'  # ResNetV1c streams, ConcatConvFusion
SEGFORMER = 'segformer_dual-mit-b0'  # MiT streams, AddFusion
KINDS = [DEEPLAB, SEGFORMER]
NUM_CLASSES = 4
SIZE = 64


def shrink_model(model: dict,
                 kind: str,
                 dropout: float = 0.0,
                 num_classes: int = NUM_CLASSES) -> dict:
    """The real model config at a tiny width (64x64 inputs)."""
    model = copy.deepcopy(model)
    stream = model['backbone']['backbone']
    head = model['decode_head']
    if kind == DEEPLAB:
        stream.update(base_channels=8, stem_channels=8)
        head.update(in_channels=64, channels=16, c1_in_channels=8, c1_channels=4)
        model['auxiliary_head'].update(
            in_channels=32, channels=8, num_classes=num_classes, dropout_ratio=dropout)
    else:
        stream.update(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 4])
        head.update(in_channels=[8, 8, 16, 32], channels=16)
    head.update(num_classes=num_classes, dropout_ratio=dropout)
    return model


@functools.lru_cache(maxsize=None)
def base_model(kind):
    return Config.fromfile(f'{ROOT}/configs/_base_/models/{kind}.py').model


def model_cfg(kind, dropout=0.0, **options):
    model = shrink_model(base_model(kind), kind, dropout)  # a ConfigDict, as in a run
    model.update(options)
    return model


def build(cfg, seed=0):
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(copy.deepcopy(cfg))


def batch(seed=0, ignore_top=8):
    """Two 64x64 RGB-T images, labels 0..3 with an unlabelled band of 255."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 4, SIZE, SIZE, generator=g)
    samples = []
    for _ in range(2):
        label = torch.randint(0, NUM_CLASSES, (1, SIZE, SIZE), generator=g)
        label[:, :ignore_top] = 255
        sample = SegDataSample(
            metainfo=dict(
                img_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return inputs, samples


def labels_of(samples):
    return torch.stack([s.gt_sem_seg.data[0] for s in samples])


def gt_probability_sum(logits, labels):
    """Sum over labelled pixels of p(ground truth), by the cross-entropy path."""
    logits = F.interpolate(logits, labels.shape[-2:], mode='bilinear')
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction='none')
    return torch.exp(-ce)[labels != 255].sum()


def mmseg_cross_entropy(logits, labels):
    """mmseg's CrossEntropyLoss (avg_non_ignore=False): the sum over labelled
    pixels divided by every pixel."""
    ce = F.cross_entropy(logits, labels, ignore_index=255, reduction='sum')
    return ce / labels.numel()


def is_aux(key):
    return key.endswith('_rgb') or key.endswith('_thermal')


# -- registered on import: substitutes with extra losses, a head overriding loss
@MODELS.register_module(force=True)
class AligningSubstitute(ZeroSubstitute):
    """Zeros, plus an alignment-style loss computed in every training forward."""
    key = 'loss_align'

    def loss(self, outs, presence):
        return {self.key: (outs['rgb'][-1] - outs['thermal'][-1]).pow(2).mean()}


@MODELS.register_module(force=True)
class ClashingSubstitute(AligningSubstitute):
    key = 'decode.loss_ce'


@SEG_MODELS.register_module(force=True)
class LossOverridingHead(FCNHead):

    def loss(self, inputs, batch_data_samples, train_cfg):
        return super().loss(inputs, batch_data_samples, train_cfg)


FCN = dict(
    type='FCNHead',
    in_channels=64,
    in_index=3,
    channels=8,
    num_convs=1,
    num_classes=NUM_CLASSES)
