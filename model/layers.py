"""Layers the neural vocoders share: causal convolutions that stream exactly, frame-exact
dense maps, weight-norm baking, and the log-mel of silence.

:class:`CachedConv` and :class:`CachedUpsample` keep the tail of the previous chunk, so
streaming over any chunks gives the samples the offline pass gives. :func:`linear` and
:func:`frame_conv` compute each frame to the same bits however many frames come at once
(what a chaotic phase reconstruction downstream needs). :class:`TorchVocoder` is the part of
every network vocoder that turns numpy log-mel into the network's tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

SILENCE = math.log(1e-5)  # the log-mel of silence under the audio convention


class CachedConv(nn.Module):
    """Causal Conv1d: output ``t`` sees inputs ``t - (k - 1) * dilation .. t``."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1, groups: int = 1):
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(cin, cout, kernel, dilation=dilation, groups=groups))
        self.context = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.context, 0)))

    def stream(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([cache, x], -1)
        return self.conv(x), x[..., x.shape[-1] - self.context :]

    def init_cache(self, batch: int, device=None) -> torch.Tensor:
        w = self.conv.weight
        return torch.zeros(batch, self.conv.in_channels, self.context, device=device, dtype=w.dtype)


class CachedUpsample(nn.Module):
    """Transposed Conv1d (stride ``s``, kernel ``2s``), causal: the ``s`` outputs of input
    ``t`` need inputs ``t - 1`` and ``t``, so the cache is one input frame."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = weight_norm(nn.ConvTranspose1d(cin, cout, 2 * stride, stride))

    def _core(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1] - 1
        return self.conv(x)[..., self.stride : (n + 1) * self.stride]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._core(F.pad(x, (1, 0)))

    def stream(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([cache, x], -1)
        return self._core(x), x[..., -1:]

    def init_cache(self, batch: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, self.conv.in_channels, 1, device=device)


def bake_weight_norm(net: nn.Module) -> nn.Module:
    """Bake the weight-norm parametrizations into plain weights (faster inference)."""
    for m in net.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight")
    return net


ROWS = 16  # below this many rows BLAS takes another path that rounds differently


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear`` over the last axis of ``(B, T, C)``, each row rounded the same however many
    rows come at once (a short chunk is padded to ``ROWS`` rows). RTISI-LA is chaotic: a
    magnitude one part in 1e15 off changes the samples a second later, so streaming equals
    offline only if every frame's magnitudes are the same bits."""
    b, t, c = x.shape
    rows = x.reshape(b * t, c)
    n = rows.shape[0]
    if n < ROWS:
        rows = F.pad(rows, (0, 0, 0, ROWS - n))
    return F.linear(rows, weight, bias)[:n].reshape(b, t, weight.shape[0])


def frame_conv(cc: CachedConv, x: torch.Tensor, cache: torch.Tensor | None = None):
    """``cc``'s causal convolution of ``x`` ``(B, C, T)`` after ``cache`` (zeros if None) ->
    ``(B, C_out, T)`` and the next cache, frame by frame the same bits for any ``T``: a dense
    convolution as :func:`linear` over the unfolded taps (torch's dense kernel rounds by chunk
    length); a depthwise one directly (its sums do not depend on the length; tested)."""
    x = F.pad(x, (cc.context, 0)) if cache is None else torch.cat([cache, x], -1)
    tail = x[..., x.shape[-1] - cc.context :]
    w, bias = cc.conv.weight, cc.conv.bias
    k = w.shape[-1]
    t = x.shape[-1] - k + 1
    if cc.conv.groups == 1:
        cols = x.unfold(-1, k, 1).permute(0, 2, 1, 3).reshape(x.shape[0], t, -1)
        return linear(cols, w.reshape(w.shape[0], -1), bias).transpose(1, 2), tail
    return F.conv1d(x, w, bias, groups=cc.conv.groups), tail  # per-output sums: chunk-invariant


class Block(nn.Module):
    """Causal ConvNeXt block: ``x + mlp(norm(depthwise_conv(x)))``."""

    def __init__(self, channels: int, kernel: int = 7, expand: int = 3):
        super().__init__()
        self.dw = CachedConv(channels, channels, kernel, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, expand * channels)
        self.down = nn.Linear(expand * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        up, down = self.up, self.down
        h = F.gelu(linear(self.norm(h.transpose(1, 2)), up.weight, up.bias))
        h = linear(h, down.weight, down.bias)
        return (self.scale * h).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._mlp(frame_conv(self.dw, x)[0])

    def stream(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, cache = frame_conv(self.dw, x, cache)
        return x + self._mlp(h), cache


class TorchVocoder:
    """A network behind the vocoder interface (:class:`model.registry.Vocoder`): numpy in,
    float32 numpy out; ``delay`` in samples; ``to(device)``."""

    needs_f0 = False

    def __init__(self, net: nn.Module, conv, header: dict, delay: int):
        self.net = net.eval()
        self.conv, self.header, self.delay = conv, header, delay

    def _in(self, x) -> torch.Tensor:
        """``(C, T)`` numpy -> ``(1, C, T)`` float32 on the network's device."""
        dev = next(self.net.parameters()).device
        return torch.from_numpy(np.asarray(x, np.float32))[None].to(dev)

    def to(self, device):
        self.net.to(device)
        return self
