"""Discriminators and their least-squares GAN losses.

:class:`MelDiscriminator` judges mel spectrograms (the acoustic model's adversarial term):
a stack of weight-normalized Conv1D over time, mel bands as channels, giving one logit per
patch of frames and the feature maps for feature matching. :class:`MultiScale` judges
waveforms (the vocoder's): MelGAN's three discriminators on the audio at full, half and
quarter rate (average pooling), each strided grouped convolutions.
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


class WaveDiscriminator(nn.Module):
    """One scale of MelGAN's discriminator (the paper's channel plan, scaled by ``width``)."""

    def __init__(self, width: int = 16, max_channels: int = 1024):
        super().__init__()
        layers = [nn.Conv1d(1, width, 15, padding=7)]
        ch = width
        for _ in range(4):
            out = min(ch * 4, max_channels)
            layers.append(nn.Conv1d(ch, out, 41, stride=4, padding=20, groups=max(1, out // 16)))
            ch = out
        layers.append(nn.Conv1d(ch, ch, 5, padding=2))
        self.convs = nn.ModuleList(weight_norm(c) for c in layers)
        self.out = weight_norm(nn.Conv1d(ch, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x)[:, 0], feats


class MultiScale(nn.Module):
    """``audio (B, N)`` -> per scale ``(logits, feature maps)``, full rate first."""

    def __init__(self, scales: int = 3, width: int = 16, max_channels: int = 1024):
        super().__init__()
        self.kwargs = {"scales": scales, "width": width, "max_channels": max_channels}
        self.discs = nn.ModuleList(WaveDiscriminator(width, max_channels) for _ in range(scales))

    def forward(self, audio: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        x, out = audio[:, None], []
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x, 4, 2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


def d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least-squares discriminator loss: real towards 1, fake towards 0."""
    return ((real - 1) ** 2).mean() + (fake**2).mean()


def g_adv_loss(fake: torch.Tensor) -> torch.Tensor:
    return ((fake - 1) ** 2).mean()


def feature_matching(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 between the discriminator's feature maps on target and generated input."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real, fake, strict=True)) / len(real)
