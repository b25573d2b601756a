"""Batch STFT and ISTFT with numba kernels (FFTs inside numba through rocket-fft).

Shapes follow librosa: a spectrogram is ``(n_bins, frames)``, ``n_bins = n_fft // 2 + 1``.
Framing follows a :class:`~dsp.convention.Convention`: the signal is padded by ``pad``
samples a side (``reflect`` as ``np.pad`` does it, or ``constant`` zeros) and framed with
``center=False``. The default convention pads 384, librosa's ``center=True`` pads n_fft // 2.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

from dsp import checks
from dsp.convention import DEFAULT, Convention

_TINY = float(np.finfo(np.float32).tiny)


@lru_cache(maxsize=16)
def window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` samples (librosa's), float64."""
    n = np.arange(win_length)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    out = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    out[start : start + win_length] = w
    out.setflags(write=False)
    return out


def pad(y: np.ndarray, conv: Convention) -> np.ndarray:
    """Pad ``y`` by ``conv.pad`` samples a side, as ``np.pad(y, pad, conv.pad_mode)``."""
    if conv.pad == 0:
        return y
    return np.pad(y, conv.pad, mode=conv.pad_mode)  # type: ignore[call-overload]


@numba.njit(cache=True, nogil=True)
def _frame_into(yp, win, hop, t0, out):  # pragma: no cover - compiled
    """Windowed frames ``t0 .. t0 + len(out)`` of the padded signal, written into ``out``."""
    n_fft = win.shape[0]
    for t in range(out.shape[0]):
        o = (t0 + t) * hop
        src, dst = yp[o : o + n_fft], out[t]  # views: the inner loop vectorizes
        for i in range(n_fft):
            dst[i] = src[i] * win[i]


@numba.njit(cache=True, nogil=True)
def _frames(yp, win, hop, n_frames):  # pragma: no cover - compiled
    out = np.empty((n_frames, win.shape[0]), dtype=yp.dtype)
    _frame_into(yp, win, hop, 0, out)
    return out


@numba.njit(cache=True, nogil=True)
def _stft_kernel(yp, win, hop, n_frames):  # pragma: no cover - compiled
    """(frames, n_bins) complex spectra of the already padded signal ``yp``."""
    return np.fft.rfft(_frames(yp, win, hop, n_frames))


@numba.njit(cache=True, nogil=True)
def _ola_kernel(spec, win, hop):  # pragma: no cover - compiled
    """Overlap-add of windowed inverse FFTs of (frames, n_bins) spectra; returns (y, wsum)."""
    n_frames = spec.shape[0]
    n_fft = win.shape[0]
    frames = np.fft.irfft(spec, n_fft)
    n = n_fft + hop * (n_frames - 1)
    y = np.zeros(n, dtype=frames.dtype)
    wsum = np.zeros(n, dtype=frames.dtype)
    for t in range(n_frames):
        o = t * hop
        for i in range(n_fft):
            y[o + i] += frames[t, i] * win[i]
            wsum[o + i] += win[i] * win[i]
    return y, wsum


def stft(y: np.ndarray, conv: Convention = DEFAULT) -> np.ndarray:
    """Complex STFT ``(n_bins, frames)``; complex64 for float32 input, complex128 for float64.

    Matches ``librosa.stft(np.pad(y, pad, pad_mode), center=False, window="hann")``; a signal
    too short for one frame gives ``(n_bins, 0)``.
    """
    y = checks.audio(y)
    n_frames = conv.n_frames(y.size)
    cdtype = np.complex64 if y.dtype == np.float32 else np.complex128
    if n_frames == 0:
        return np.zeros((conv.n_bins, 0), dtype=cdtype)
    win = window(conv.n_fft, conv.win_length).astype(y.dtype)
    spec = _stft_kernel(pad(y, conv), win, conv.hop_length, n_frames)
    return spec.T.astype(cdtype, copy=False)


def istft(S: np.ndarray, conv: Convention = DEFAULT, length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft` by windowed overlap-add (librosa's ``istft``).

    Returns ``(frames - 1) * hop + n_fft - 2 * pad`` samples (``frames * hop`` for the default
    convention), or ``length`` samples from the first unpadded one (zero-filled past the
    last frame) when given.
    """
    S = checks.spectrum(S, conv.n_bins)
    if S.dtype.kind != "c":
        raise ValueError("istft needs a complex spectrogram; for magnitudes use griffin_lim")
    fdtype = np.float32 if S.dtype == np.complex64 else np.float64
    if S.shape[1] == 0:
        return np.zeros(length or 0, dtype=fdtype)
    win = window(conv.n_fft, conv.win_length).astype(fdtype)
    y, wsum = _ola_kernel(np.ascontiguousarray(S.T), win, conv.hop_length)
    nz = wsum > _TINY
    y[nz] /= wsum[nz]
    if length is None:
        return np.ascontiguousarray(y[conv.pad : y.size - conv.pad])
    y = y[conv.pad : conv.pad + length]  # as librosa: the trailing pad's samples count too
    return np.ascontiguousarray(np.pad(y, (0, length - y.size)) if y.size < length else y)
