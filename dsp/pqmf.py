"""Pseudo-QMF filter bank (cosine-modulated, Kaiser-window prototype) for multi-band vocoders.

``analysis(x)`` splits audio into ``bands`` critically sampled sub-bands ``(bands, N / bands)``;
``synthesis(b)`` puts them back together. Both are zero-phase (centered FIRs), so that
``synthesis(analysis(x))`` is ``x`` up to the bank's small aliasing and ripple error. The
torch side (``model.pqmf``) uses the same :func:`filters`.

The prototype is the windowed ideal low-pass of Lin et al. (1998): ``taps`` + 1 coefficients,
cut-off ``cutoff`` (a fraction of Nyquist), Kaiser ``beta``; band ``k`` modulates it by
``cos((2k + 1) pi / (2 bands) (n - taps / 2) -/+ (-1)^k pi / 4)``.
"""

from __future__ import annotations

import numpy as np


def filters(bands: int = 4, taps: int = 62, cutoff: float = 0.142, beta: float = 9.0):
    """``(analysis, synthesis)``, each ``(bands, taps + 1)`` float64."""
    if taps % 2:
        raise ValueError(f"taps must be even, got {taps}")
    n = np.arange(taps + 1) - taps / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ideal = np.sin(np.pi * cutoff * n) / (np.pi * n)
    ideal[taps // 2] = cutoff
    proto = ideal * np.kaiser(taps + 1, beta)
    k = np.arange(bands)[:, None]
    phase = (2 * k + 1) * np.pi / (2 * bands) * n[None]
    sign = (-1.0) ** k * np.pi / 4
    return 2 * proto * np.cos(phase + sign), 2 * proto * np.cos(phase - sign)


def analysis(x: np.ndarray, bands: int = 4, taps: int = 62) -> np.ndarray:
    """``(N,)`` audio -> ``(bands, ceil(N / bands))`` sub-bands."""
    h, _ = filters(bands, taps)
    x = np.asarray(x, np.float64)
    full = np.stack([np.convolve(x, hk)[taps // 2 : taps // 2 + len(x)] for hk in h])
    return full[:, ::bands]


def synthesis(b: np.ndarray, bands: int = 4, taps: int = 62) -> np.ndarray:
    """``(bands, M)`` sub-bands -> ``(M * bands,)`` audio."""
    _, g = filters(bands, taps)
    b = np.asarray(b, np.float64)
    up = np.zeros((bands, b.shape[1] * bands))
    up[:, ::bands] = b * bands
    n = up.shape[1]
    return sum(np.convolve(u, gk)[taps // 2 : taps // 2 + n] for u, gk in zip(up, g, strict=True))
