"""Monotonic alignment search (Glow-TTS): the best monotonic, surjective path through a
(tokens, frames) score matrix, as integer durations that sum exactly to the frame count."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _mas_kernel(logp):  # pragma: no cover - compiled
    n_tok, n_frames = logp.shape
    neg = -1e30
    q = np.full((n_tok, n_frames), neg)
    q[0, 0] = logp[0, 0]
    for j in range(1, n_frames):
        lo = max(0, n_tok - (n_frames - j))  # leave a frame for every remaining token
        for i in range(lo, min(n_tok, j + 1)):
            stay = q[i, j - 1]
            move = q[i - 1, j - 1] if i > 0 else neg
            q[i, j] = max(stay, move) + logp[i, j]
    durations = np.zeros(n_tok, dtype=np.int64)
    i = n_tok - 1
    for j in range(n_frames - 1, -1, -1):
        durations[i] += 1
        if i > 0 and (j == i or q[i - 1, j - 1] >= q[i, j - 1]):
            i -= 1
    return durations


def monotonic_alignment(logp: np.ndarray) -> np.ndarray:
    """Durations ``(tokens,)`` int64 of the best path through ``logp`` ``(tokens, frames)``:
    it starts at (0, 0), ends at the last token and frame, and each frame moves on by at most
    one token, so every token gets at least one frame. Needs ``frames >= tokens``."""
    logp = np.asarray(logp, dtype=np.float64)
    if logp.ndim != 2 or logp.shape[0] == 0:
        raise ValueError(f"logp must be (tokens, frames) with tokens >= 1, got {logp.shape}")
    if logp.shape[1] < logp.shape[0]:
        raise ValueError(
            f"{logp.shape[0]} tokens cannot align to {logp.shape[1]} frames: "
            "each token needs at least one frame"
        )
    if not np.isfinite(logp).all():
        raise ValueError("logp has NaN or infinite values")
    return _mas_kernel(np.ascontiguousarray(logp))
