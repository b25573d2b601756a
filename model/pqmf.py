"""The PQMF bank of :mod:`dsp.pqmf` in torch, for multi-band vocoders (fixed, not trained).

``analysis`` and ``synthesis`` are the centered (zero-phase) transforms and match the numpy
ones; ``synthesis_causal`` is the same synthesis ``taps / 2`` samples late, computed causally
so that ``stream`` (which keeps the last ``taps`` upsampled samples) reproduces it exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dsp import pqmf


class PQMF(nn.Module):
    def __init__(self, bands: int = 4, taps: int = 62):
        super().__init__()
        self.bands, self.taps = bands, taps
        h, g = pqmf.filters(bands, taps)
        # conv1d correlates; np.convolve convolves: flip the filters
        self.register_buffer("h", torch.tensor(h[:, ::-1].copy(), dtype=torch.float32)[:, None])
        self.register_buffer("g", torch.tensor(g[:, ::-1].copy(), dtype=torch.float32)[None])

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` -> ``(B, bands, ceil(N / bands))``."""
        y = F.conv1d(F.pad(x[:, None], (self.taps // 2, self.taps // 2)), self.h)
        return y[..., :: self.bands]

    def _up(self, b: torch.Tensor) -> torch.Tensor:
        n = b.shape[-1]
        up = b.new_zeros(b.shape[0], self.bands, n * self.bands)
        up[..., :: self.bands] = b * self.bands
        return up

    def synthesis(self, b: torch.Tensor) -> torch.Tensor:
        """``(B, bands, M)`` -> ``(B, M * bands)``."""
        half = self.taps // 2
        return F.conv1d(F.pad(self._up(b), (half, half)), self.g)[:, 0]

    def synthesis_causal(self, b: torch.Tensor) -> torch.Tensor:
        return F.conv1d(F.pad(self._up(b), (self.taps, 0)), self.g)[:, 0]

    def stream(self, b: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([cache, self._up(b)], -1)
        return F.conv1d(x, self.g)[:, 0], x[..., x.shape[-1] - self.taps :]

    def init_cache(self, batch: int, device=None) -> torch.Tensor:
        return torch.zeros(batch, self.bands, self.taps, device=device)
