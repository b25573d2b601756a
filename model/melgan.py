"""MelGAN vocoders that stream exactly: log-mel ``(B, n_mels, T)`` -> audio ``(B, T * hop)``.

Every convolution is causal and keeps the tail of the previous chunk (:class:`CachedConv`,
:class:`CachedUpsample`), so ``stream`` over any chunk sizes gives the samples ``forward``
gives. Look-ahead is bought explicitly: the network's causal output is read ``lookahead``
frames late, so each sample sees that many mel frames past its own, and ``delay`` (samples) is
``lookahead * hop``. ``forward`` pads the end with silent frames and drops the first ``delay``
samples; ``stream`` drops them as they come and ``flush`` feeds the same silent frames.

``MelGAN(bands=1)`` is the paper's generator (ratios 8, 8, 2, 2; 512 channels; residual
stacks with dilations 1, 3, 9; weight norm; about 4.3M parameters). ``bands=4`` is the
multi-band variant: the network runs at a quarter of the rate and emits four sub-bands that
a PQMF synthesis bank (:mod:`model.pqmf`) joins.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from model.layers import SILENCE, CachedConv, CachedUpsample, TorchVocoder, bake_weight_norm
from model.pqmf import PQMF


class ResidualStack(nn.Module):
    """MelGAN's residual stack: for each dilation, ``x + conv1x1(lrelu(conv_d(lrelu(x))))``
    with a 1x1 shortcut, as in the paper."""

    def __init__(self, channels: int, dilations=(1, 3, 9)):
        super().__init__()
        self.convs = nn.ModuleList(CachedConv(channels, channels, 3, d) for d in dilations)
        self.mix = nn.ModuleList(weight_norm(nn.Conv1d(channels, channels, 1)) for _ in dilations)
        self.short = nn.ModuleList(weight_norm(nn.Conv1d(channels, channels, 1)) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, mix, short in zip(self.convs, self.mix, self.short, strict=True):
            x = short(x) + mix(F.leaky_relu(conv(F.leaky_relu(x, 0.2)), 0.2))
        return x

    def stream(self, x: torch.Tensor, caches: list) -> tuple[torch.Tensor, list]:
        out = []
        for conv, mix, short, c in zip(self.convs, self.mix, self.short, caches, strict=True):
            y, c = conv.stream(F.leaky_relu(x, 0.2), c)
            x = short(x) + mix(F.leaky_relu(y, 0.2))
            out.append(c)
        return x, out

    def init_cache(self, batch: int, device=None) -> list:
        return [c.init_cache(batch, device) for c in self.convs]


class MelGAN(nn.Module):
    def __init__(self, n_mels: int = 80, hop: int = 256, channels: int = 512,
                 ratios: tuple[int, ...] = (8, 8, 2, 2), dilations: tuple[int, ...] = (1, 3, 9),
                 bands: int = 1, lookahead: int = 1):  # fmt: skip
        super().__init__()
        if math.prod(ratios) * bands != hop:
            raise ValueError(f"ratios {ratios} x {bands} bands must multiply to hop {hop}")
        self.kwargs = {"n_mels": n_mels, "hop": hop, "channels": channels,
                       "ratios": list(ratios), "dilations": list(dilations), "bands": bands,
                       "lookahead": lookahead}  # fmt: skip
        self.hop, self.bands, self.lookahead = hop, bands, lookahead
        self.delay = lookahead * hop
        self.pre = CachedConv(n_mels, channels, 7)
        ups, stacks, ch = [], [], channels
        for r in ratios:
            ups.append(CachedUpsample(ch, ch // 2, r))
            ch //= 2
            stacks.append(ResidualStack(ch, dilations))
        self.ups, self.stacks = nn.ModuleList(ups), nn.ModuleList(stacks)
        self.post = CachedConv(ch, bands, 7)
        self.pqmf = PQMF(bands) if bands > 1 else None

    def _causal(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre(mel)
        for up, stack in zip(self.ups, self.stacks, strict=True):
            x = stack(up(F.leaky_relu(x, 0.2)))
        x = torch.tanh(self.post(F.leaky_relu(x, 0.2)))
        return self.pqmf.synthesis_causal(x) if self.pqmf is not None else x[:, 0]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` -> ``(B, T * hop)`` audio."""
        t = mel.shape[-1]
        mel = F.pad(mel, (0, self.lookahead), value=SILENCE)
        return self._causal(mel)[:, self.delay : self.delay + t * self.hop]

    def initial_state(self, batch: int = 1, device=None) -> dict:
        return {
            "pre": self.pre.init_cache(batch, device),
            "ups": [u.init_cache(batch, device) for u in self.ups],
            "stacks": [s.init_cache(batch, device) for s in self.stacks],
            "post": self.post.init_cache(batch, device),
            "pqmf": self.pqmf.init_cache(batch, device) if self.pqmf is not None else None,
            "skip": torch.tensor(self.delay),  # causal samples still to drop
        }

    def stream(self, mel: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """A chunk of frames ``(B, n_mels, k)`` -> the ``k * hop`` samples now final (the
        first ``delay`` samples of a stream come out by :meth:`flush`)."""
        st = state if state is not None else self.initial_state(mel.shape[0], mel.device)
        new: dict = {"ups": [], "stacks": []}
        x, new["pre"] = self.pre.stream(mel, st["pre"])
        for up, stack, cu, cs in zip(self.ups, self.stacks, st["ups"], st["stacks"], strict=True):
            x, c = up.stream(F.leaky_relu(x, 0.2), cu)
            new["ups"].append(c)
            x, c = stack.stream(x, cs)
            new["stacks"].append(c)
        x, new["post"] = self.post.stream(F.leaky_relu(x, 0.2), st["post"])
        x = torch.tanh(x)
        if self.pqmf is not None:
            y, new["pqmf"] = self.pqmf.stream(x, st["pqmf"])
        else:
            y, new["pqmf"] = x[:, 0], None
        skip = int(st["skip"])
        new["skip"] = torch.tensor(max(0, skip - y.shape[-1]))
        return y[:, skip:], new

    def flush(self, state: dict) -> torch.Tensor:
        """The last ``delay`` samples: the look-ahead frames, fed as silence."""
        b = state["pre"].shape[0]
        pad = state["pre"].new_full((b, self.pre.conv.in_channels, self.lookahead), SILENCE)
        return self.stream(pad, state)[0] if self.lookahead else pad.new_zeros(b, 0)

    def remove_weight_norm(self) -> MelGAN:
        return bake_weight_norm(self)


class MelGANVocoder(TorchVocoder):
    """A trained MelGAN checkpoint behind the vocoder interface: ``(n_mels, T)`` numpy log-mel
    in, float32 audio out; ``stream`` / ``flush``; ``delay`` in samples."""

    def __init__(self, net: MelGAN, conv, header: dict):
        super().__init__(net, conv, header, net.delay)

    @torch.no_grad()
    def __call__(self, log_mel, f0=None) -> np.ndarray:
        return self.net(self._in(log_mel))[0].cpu().numpy()

    @torch.no_grad()
    def stream(self, log_mel, state: dict | None = None, f0=None) -> tuple[np.ndarray, dict]:
        y, state = self.net.stream(self._in(log_mel), state)
        return y[0].cpu().numpy(), state

    @torch.no_grad()
    def flush(self, state: dict) -> np.ndarray:
        return self.net.flush(state)[0].cpu().numpy()
