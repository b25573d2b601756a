"""Input validation shared by the dsp entry points: clear ValueErrors, never a numba crash."""

from __future__ import annotations

import numpy as np


def audio(y: object, name: str = "y", allow_empty: bool = False) -> np.ndarray:
    """Return ``y`` as a contiguous 1-D float array (float32 or float64 kept as given).

    Refuses, with a message that says what to do: non-arrays, integer or complex dtypes,
    more than one channel, empty arrays (unless ``allow_empty``), NaN and infinities.
    """
    if not isinstance(y, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of float32 samples, got {type(y).__name__}")
    if y.dtype not in (np.float32, np.float64):
        hint = (
            " (integer PCM: divide by 32768 for int16, e.g. y.astype(np.float32) / 32768)"
            if np.issubdtype(y.dtype, np.integer)
            else ""
        )
        raise ValueError(f"{name} must be float32 or float64 audio, got dtype {y.dtype}{hint}")
    if y.ndim != 1:
        if y.ndim == 2 and min(y.shape) <= 8:
            axis = int(np.argmin(y.shape))
            raise ValueError(
                f"{name} must be mono (1-D), got shape {y.shape}: "
                f"downmix first, e.g. y.mean(axis={axis})"
            )
        raise ValueError(f"{name} must be mono (1-D), got shape {y.shape}")
    if y.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty: need at least one sample")
    finite = np.isfinite(y)
    if not finite.all():
        i = int(np.argmin(finite))
        raise ValueError(
            f"{name} has a non-finite value ({y[i]}) at sample {i}: "
            "clean it (np.nan_to_num) before analysis"
        )
    return np.ascontiguousarray(y)


def spectrum(S: object, n_bins: int, name: str = "S", complex_ok: bool = True) -> np.ndarray:
    """Validate a (n_bins, frames) spectrogram."""
    if not isinstance(S, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape ({n_bins}, frames)")
    if S.ndim != 2 or S.shape[0] != n_bins:
        raise ValueError(f"{name} must have shape ({n_bins}, frames), got {S.shape}")
    kinds = (np.float32, np.float64) + ((np.complex64, np.complex128) if complex_ok else ())
    if S.dtype not in kinds:
        raise ValueError(
            f"{name} must have dtype in {[np.dtype(k).name for k in kinds]}, got {S.dtype}"
        )
    if not np.isfinite(S).all():
        raise ValueError(f"{name} has NaN or infinite values")
    return np.ascontiguousarray(S)
