"""A toy two-modality model (dual-stream backbone + shared head) for hook tests."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch.utils.data import Dataset


@MODELS.register_module(force=True)
class ToyStream(nn.Module):
    """Two convs; returns one feature level."""

    def __init__(self, in_channels=3, channels=4):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return (self.conv2(torch.relu(self.conv1(x))), )


@MODELS.register_module(force=True)
class ToyRGBTModel(BaseModel):
    """Fused loss, plus per-modality auxiliary losses when ``aux_losses``."""

    def __init__(self, aux_losses=False, fusion='AddFusion'):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='DualStreamBackbone',
                backbone=dict(type='ToyStream'),
                fusion=dict(type=fusion),
                probe_size=(8, 8)))
        self.head = nn.Conv2d(4, 1, 1)
        self.aux_losses = aux_losses

    def forward(self, inputs, data_samples=None, mode='loss'):
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(inputs)
        fused = self.backbone(inputs)[0]
        pred = self.head(fused).mean(dim=(1, 2, 3))
        target = inputs[:, 0].mean(dim=(1, 2)) if data_samples is None else \
            torch.as_tensor(data_samples, dtype=torch.float32)
        if mode != 'loss':
            return pred
        losses = dict(loss=((pred - target)**2).mean())
        if self.aux_losses:
            streams = self.backbone.forward_streams(inputs)
            for name, feats in streams.items():
                aux = self.head(feats[0]).mean(dim=(1, 2, 3))
                losses[f'loss_aux_{name}'] = ((aux - target)**2).mean()
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
