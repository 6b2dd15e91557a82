"""A toy two-modality model (dual-stream backbone + shared head) for hook tests."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from mwam_mm.models import ModalityOutputsMixin
from mwam_mm.presence import presence_from_data_samples


@MODELS.register_module(force=True)
class ToyStream(nn.Module):
    """Two convs; returns one feature level.

    ``norm``: a BatchNorm after the first conv; ``mix``: a per-pixel linear
    channel mix (a 2-D weight, as in a transformer) after the second.
    """

    def __init__(self, in_channels=3, channels=4, norm=False, mix=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels) if norm else None
        self.mix = nn.Linear(channels, channels) if mix else None

    def forward(self, x):
        x = self.conv1(x)
        if self.norm is not None:
            x = self.norm(x)
        x = self.conv2(torch.relu(x))
        if self.mix is not None:
            x = self.mix(x.movedim(1, -1)).movedim(-1, 1)
        return (x, )


@MODELS.register_module(force=True)
class ToyRGBTModel(BaseModel, ModalityOutputsMixin):
    """Fused loss, plus per-modality auxiliary losses when ``aux_losses``.

    The per-modality outputs contract (:class:`ModalityOutputsMixin`): the
    auxiliary "heads" are the shared head on each stream's features (so
    ``has_modality_heads()`` is ``aux_losses``), and while
    ``modality_scores_source`` is set the loss dict has, per modality, the sum
    over the batch of ``exp(-(pred_m - target) ** 2)`` (a probability of the
    truth; ``pred_m`` the head on the modality's stream features, the unimodal
    view of ``AddFusion``) and the batch size; ``modality_scores``
    (``{modality: (sum, count)}``) fixes them instead.

    Args:
        aux_losses (bool): Add ``loss_aux_<m>``.
        fusion (str): Fusion type.
        stream (dict, optional): Extra ``ToyStream`` arguments (``norm``,
            ``mix``).
        modalities (list[dict], optional): The backbone's modality layout.
        modality_scores (dict, optional): Fixed scores, see above.
    """

    def __init__(self,
                 aux_losses=False,
                 fusion='AddFusion',
                 stream=None,
                 modalities=None,
                 modality_scores=None):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='DualStreamBackbone',
                backbone=dict(type='ToyStream', **(stream or {})),
                fusion=dict(type=fusion),
                modalities=modalities,
                probe_size=(8, 8)))
        self.head = nn.Conv2d(4, 1, 1)
        self.aux_losses = aux_losses
        self.modality_scores = modality_scores

    def has_modality_heads(self):
        return bool(self.aux_losses)

    def _modality_scores(self, inputs, target):
        scores = {}
        if self.modality_scores is not None:
            for name, (total, count) in self.modality_scores.items():
                scores[f'modality_score_{name}'] = torch.tensor(
                    float(total), dtype=torch.float64)
                scores[f'modality_count_{name}'] = torch.tensor(
                    float(count), dtype=torch.float64)
            return scores
        with torch.no_grad():
            for name, feats in self.backbone.forward_streams(inputs).items():
                pred = self.head(feats[0]).mean(dim=(1, 2, 3))
                scores[f'modality_score_{name}'] = torch.exp(-(pred - target)**2).sum()
                scores[f'modality_count_{name}'] = torch.tensor(float(len(pred)))
        return scores

    def forward(self, inputs, data_samples=None, mode='loss'):
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(inputs)
        # data samples: the targets (floats), or elements with missing_modalities
        samples = data_samples if isinstance(data_samples, list) and isinstance(
            data_samples[0], BaseDataElement) else None
        presence = presence_from_data_samples(samples, self.backbone.layout)
        fused = self.backbone(inputs, presence)[0]
        pred = self.head(fused).mean(dim=(1, 2, 3))
        target = inputs[:, 0].mean(dim=(
            1,
            2)) if data_samples is None or (samples is not None) else torch.as_tensor(
                data_samples, dtype=torch.float32)
        if mode != 'loss':
            return pred
        losses = dict(loss=((pred - target)**2).mean())
        if self.aux_losses:
            streams = self.backbone.forward_streams(inputs)
            for name, feats in streams.items():
                aux = self.head(feats[0]).mean(dim=(1, 2, 3))
                losses[f'loss_aux_{name}'] = ((aux - target)**2).mean()
        if self.modality_scores_source is not None:
            losses.update(self._modality_scores(inputs, target))
        return losses


def toy_batch(seed=0, batch=4, size=16):
    """RGB: smooth, thermal: noisy (so their FRM differ clearly)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing='ij')
    smooth = (torch.sin(xx / 5.0) + torch.cos(yy / 7.0)).float()
    rgb = smooth.expand(batch, 3, size, size) * torch.rand(batch, 3, 1, 1, generator=g)
    thermal = torch.randn(batch, 1, size, size, generator=g)
    return torch.cat([rgb, thermal], dim=1)


class ToyDataset(Dataset):
    """Deterministic samples: index -> (4-channel image, scalar target)."""

    def __init__(self, length=16, size=16):
        self.length, self.size = length, size

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        x = toy_batch(seed=index, batch=1, size=self.size)[0]
        return dict(inputs=x, data_samples=float(x[0].mean()))
