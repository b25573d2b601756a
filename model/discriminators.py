"""Discriminators and their least-squares GAN losses.

:class:`MelDiscriminator` judges mel spectrograms (the acoustic model's adversarial term):
a stack of weight-normalized Conv1D over time, mel bands as channels, giving one logit per
patch of frames and the feature maps for feature matching.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class MelDiscriminator(nn.Module):
    def __init__(self, n_mels: int = 80, channels: int = 256):
        super().__init__()
        self.kwargs = {"n_mels": n_mels, "channels": channels}
        shapes = [(n_mels, channels, 5, 1), (channels, channels, 5, 2),
                  (channels, channels, 5, 2), (channels, channels, 5, 1)]  # fmt: skip
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(i, o, k, stride=s, padding=k // 2)) for i, o, k, s in shapes
        )
        self.out = weight_norm(nn.Conv1d(channels, 1, 3, padding=1))

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``mel (B, T, n_mels)`` -> ``(logits (B, T'), feature maps)``."""
        x, feats = mel.transpose(1, 2), []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x)[:, 0], feats


def d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: real towards 1, fake towards 0."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def g_adv_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((fake - 1) ** 2).mean()


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator's feature maps on target and generated input."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real, fake, strict=True)) / len(real)
