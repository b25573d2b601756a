"""A peak limiter for the mixer: no sample leaves above the ceiling, whatever is summed.

The gain follows the peak envelope instantly on the way down (so the ceiling holds sample by
sample) and recovers with ``release`` seconds' time constant; its state is one float, kept
by the caller between blocks.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, fastmath=False)
def _limit(x, out, ceiling, coef, gain):
    for i in range(x.shape[0]):
        a = abs(x[i])
        target = ceiling / a if a * gain > ceiling else 1.0
        if target < gain:
            gain = target
        else:
            gain = target + (gain - target) * coef
            if a * gain > ceiling:
                gain = ceiling / a
        out[i] = x[i] * gain
    return gain


def limit(x: np.ndarray, gain: float = 1.0, ceiling: float = 0.98, release: float = 0.08,
          rate: int = 22050) -> tuple[np.ndarray, float]:  # fmt: skip
    """``(limited block, gain state)``; pass the returned gain to the next block."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    coef = math.exp(-1.0 / (release * rate))
    return out, float(_limit(x, out, np.float32(ceiling), coef, gain))
