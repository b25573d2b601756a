"""Mel filterbank (slaney, as ``librosa.filters.mel``), log-mel, its inverse, and MFCC."""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numba
import numpy as np

from dsp import checks
from dsp import spectral as _sp
from dsp.convention import DEFAULT, Convention

_F_SP = 200.0 / 3  # slaney: linear below 1 kHz, 66.7 Hz a mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f = np.asanyarray(f, dtype=np.float64)
    lin = f / _F_SP
    return np.where(
        f >= _MIN_LOG_HZ,
        _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP,
        lin,
    )


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    return np.where(
        m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m
    )


@lru_cache(maxsize=16)
def _basis64(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]  # slaney area norm
    weights.setflags(write=False)
    return weights


def mel_basis(conv: Convention = DEFAULT, dtype: type = np.float32) -> np.ndarray:
    """``(n_mels, n_bins)`` slaney-normalized triangular filters, as ``librosa.filters.mel``."""
    b = _basis64(conv.sample_rate, conv.n_fft, conv.n_mels, conv.fmin, conv.fmax)
    return b.astype(dtype)


@lru_cache(maxsize=16)
def _sparse(conv: Convention) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each filter's first bin, end bin and (n_mels, n_bins) weights, for the fused kernels."""
    b = _basis64(conv.sample_rate, conv.n_fft, conv.n_mels, conv.fmin, conv.fmax)
    nz = b > 0
    lo = np.where(nz.any(1), nz.argmax(1), 0).astype(np.int64)
    hi = np.where(nz.any(1), b.shape[1] - nz[:, ::-1].argmax(1), 0).astype(np.int64)
    return lo, hi, np.ascontiguousarray(b.astype(np.float32))


_BLOCK = 32  # frames analysed at a time, so that frames and spectra stay in cache


@numba.njit(cache=True, nogil=True, fastmath=True)
def _mel_into(spec, lo, hi, w, clamp, out, t0):  # pragma: no cover - compiled
    """(k, n_bins) complex spectra -> log-mel columns ``t0 .. t0 + k`` of ``out``.

    Magnitudes are fused in, each filter sums only over its own (contiguous) bins, and the
    inner loops run across frames, so that they vectorize.
    """
    nb, n_bins = spec.shape
    mag = np.empty((n_bins, nb), dtype=np.float32)
    for t in range(nb):
        for k in range(n_bins):
            z = spec[t, k]
            mag[k, t] = z.real * z.real + z.imag * z.imag
    for k in range(n_bins):
        mk = mag[k]
        for t in range(nb):
            mk[t] = np.sqrt(mk[t])
    for m in range(lo.shape[0]):
        acc = out[m, t0 : t0 + nb]  # row views keep the inner loop contiguous
        acc[:] = 0.0
        for k in range(lo[m], hi[m]):
            wk, mk = w[m, k], mag[k]
            for t in range(nb):
                acc[t] += wk * mk[t]
        for t in range(nb):
            acc[t] = np.log(max(acc[t], clamp))


@numba.njit(cache=True, nogil=True)
def _log_mel_kernel(yp, win, hop, start, stop, lo, hi, w, clamp, out):  # pragma: no cover
    """Log-mel columns ``start .. stop`` of the padded signal into ``out``, a block at a time."""
    frames = np.empty((min(_BLOCK, stop - start), win.shape[0]), dtype=yp.dtype)
    for t0 in range(start, stop, _BLOCK):
        nb = min(_BLOCK, stop - t0)
        _sp._frame_into(yp, win, hop, t0, frames[:nb])
        _mel_into(np.fft.rfft(frames[:nb]), lo, hi, w, clamp, out, t0)


def log_mel_padded(yp: np.ndarray, n_frames: int, win: np.ndarray, conv: Convention) -> np.ndarray:
    """Log-mel of ``n_frames`` frames of an already padded signal (see :func:`log_mel`).

    Long inputs are split in frame ranges over the cores (the kernel releases the GIL); each
    frame's numbers are the same however the work is split.
    """
    lo, hi, w = _sparse(conv)
    out = np.empty((conv.n_mels, n_frames), dtype=np.float32)
    args = (yp, win, conv.hop_length)
    rest = (lo, hi, w, np.float32(conv.log_clamp), out)
    if n_frames < _PARALLEL_MIN_FRAMES or _WORKERS == 1:
        _log_mel_kernel(*args, 0, n_frames, *rest)
        return out
    cuts = np.linspace(0, n_frames, _WORKERS + 1).astype(int)
    jobs = [
        _pool().submit(_log_mel_kernel, *args, a, b, *rest) for a, b in itertools.pairwise(cuts)
    ]
    for j in jobs:
        j.result()
    return out


_WORKERS = min(os.cpu_count() or 1, 4)
_PARALLEL_MIN_FRAMES = 8 * _BLOCK


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_WORKERS, thread_name_prefix="melgand-dsp")


def log_mel(y: np.ndarray, conv: Convention = DEFAULT) -> np.ndarray:
    """Log-mel spectrogram ``(n_mels, len(y) // hop)`` float32 under the convention.

    ``log(max(mel_basis @ |stft(y)|, 1e-5))`` for the default convention, the features every
    melgand model is trained on. ``y``: mono float32 (or float64) at ``conv.sample_rate``.
    """
    y = checks.audio(y)
    n_frames = conv.n_frames(y.size)
    if n_frames == 0:
        return np.zeros((conv.n_mels, 0), dtype=np.float32)
    win = _sp.window(conv.n_fft, conv.win_length).astype(y.dtype)
    return log_mel_padded(_sp.pad(y, conv), n_frames, win, conv)


@lru_cache(maxsize=16)
def _nnls_mats(conv: Convention):
    """The pseudo-inverse, the transpose and the basis's non-zeros per band (CSR)."""
    b = _basis64(conv.sample_rate, conv.n_fft, conv.n_mels, conv.fmin, conv.fmax)
    nz = [np.flatnonzero(row) for row in b]
    indptr = np.concatenate(([0], np.cumsum([len(z) for z in nz]))).astype(np.int64)
    indices = np.concatenate(nz).astype(np.int64)
    data = np.concatenate([b[j, z] for j, z in enumerate(nz)])
    return np.linalg.pinv(b), np.ascontiguousarray(b.T), (data, indices, indptr)


@numba.njit(cache=True, nogil=True)
def _lee_seung_frame(s, t, btm, bs, den, data, indices, indptr, iters, keep):  # pragma: no cover
    """``s[:, t] *= (B^T m) / (B^T B s)`` ``iters`` times, B sparse (slaney bands overlap
    little); ``btm`` is frame t's B^T m. A bin no band covers goes to 0, or with ``keep``
    stays as it is."""
    n_mels = indptr.shape[0] - 1
    for _ in range(iters):
        for j in range(n_mels):
            acc = 0.0
            for k in range(indptr[j], indptr[j + 1]):
                acc += data[k] * s[indices[k], t]
            bs[j] = acc
        den[:] = 0.0
        for j in range(n_mels):
            for k in range(indptr[j], indptr[j + 1]):
                den[indices[k]] += data[k] * bs[j]
        for i in range(s.shape[0]):
            if not (keep and den[i] <= 0.0):
                s[i, t] *= btm[i] / max(den[i], 1e-12)


@numba.njit(cache=True, nogil=True)
def _lee_seung(s, btm, data, indices, indptr, iters):  # pragma: no cover
    """Every frame of ``s`` through :func:`_lee_seung_frame`, ``btm = B^T m`` given."""
    bs = np.empty(indptr.shape[0] - 1)
    den = np.empty(s.shape[0])
    for t in range(s.shape[1]):
        _lee_seung_frame(s, t, btm[:, t], bs, den, data, indices, indptr, iters, False)


@numba.njit(cache=True, nogil=True)
def _refine(s, m, data, indices, indptr, iters):  # pragma: no cover
    """:func:`_lee_seung` with ``B^T m`` made here frame by frame (the same bits whatever
    the number of frames, which a BLAS product does not promise), uncovered bins kept."""
    n_mels = indptr.shape[0] - 1
    bs = np.empty(n_mels)
    den = np.empty(s.shape[0])
    btm = np.empty(s.shape[0])
    for t in range(s.shape[1]):
        btm[:] = 0.0
        for j in range(n_mels):
            for k in range(indptr[j], indptr[j + 1]):
                btm[indices[k]] += data[k] * m[j, t]
        _lee_seung_frame(s, t, btm, bs, den, data, indices, indptr, iters, True)


def mel_to_magnitude(mel: np.ndarray, conv: Convention = DEFAULT, iters: int = 16) -> np.ndarray:
    """Approximate inverse of the mel projection: ``(n_mels, frames)`` linear-amplitude mel ->
    ``(n_bins, frames)`` non-negative magnitude, by non-negative least squares (pseudo-inverse
    start, then Lee-Seung multiplicative updates). Use ``np.exp(log_mel)`` as input.
    """
    mel = checks.spectrum(mel, conv.n_mels, "mel", complex_ok=False).astype(np.float64)
    if (mel < 0).any():
        raise ValueError("mel must be non-negative linear amplitudes (np.exp of a log-mel)")
    pinv, bt, csr = _nnls_mats(conv)
    s = np.ascontiguousarray(np.maximum(pinv @ mel, 1e-8))
    _lee_seung(s, np.ascontiguousarray(bt @ mel), *csr, iters)
    return s.astype(np.float32)


def refine_to_mel(mag: np.ndarray, mel: np.ndarray, conv: Convention = DEFAULT,
                  iters: int = 8) -> np.ndarray:  # fmt: skip
    """``iters`` Lee-Seung steps of ``min ||B mag - mel||`` from a positive magnitude ``(n_bins,
    frames)`` toward the linear-amplitude mel ``(n_mels, frames)`` (float64 copy returned).
    Multiplicative: a bin's level moves, its zeros and fine structure stay, and so do bins
    beyond the mel's range. Frame by frame: any chunking gives the same bits."""
    s = np.array(mag, np.float64, order="C")
    if iters:
        _refine(s, np.ascontiguousarray(mel, np.float64), *_nnls_mats(conv)[2], iters)
    return s


def warp(log_mel: np.ndarray, factors: np.ndarray, conv: Convention = DEFAULT) -> np.ndarray:
    """Scale the frequency axis of each frame of a log-mel ``(n_mels, k)`` by ``factors[k]``
    (a harmonic at f moves to f * factor): each band takes the (interpolated) value at its
    centre frequency divided by the factor. Used to sing beyond a voice's trained pitch
    range: harmonics land exactly on the new pitch (the formants move with them)."""
    log_mel = np.asarray(log_mel, np.float32)
    lo, hi = hz_to_mel(conv.fmin), hz_to_mel(conv.fmax)
    centres = mel_to_hz(np.linspace(lo, hi, conv.n_mels + 2))[1:-1]
    out = np.empty_like(log_mel)
    for t, k in enumerate(np.asarray(factors, np.float64)):
        out[:, t] = log_mel[:, t] if k == 1.0 else np.interp(centres / k, centres, log_mel[:, t])
    return out


def envelope(log_mel: np.ndarray, keep: int = 10) -> np.ndarray:
    """A log-mel ``(n_mels, k)`` smoothed across its bands to its spectral envelope: the
    first ``keep`` coefficients of its DCT (the cepstrum of the mel) kept. With 80 bands
    and ``keep = 10`` the harmonics the low bands resolve are gone, the formants stay."""
    log_mel = np.asarray(log_mel, np.float32)
    d = _dct_ortho(log_mel.shape[0], keep).astype(np.float32)
    return (d.T @ (d @ log_mel)).astype(np.float32)


_RIPPLE_STEPS = 192  # ripple table entries an octave (6.25 cents apart)
_RIPPLE_LO = 30.0  # Hz, the table's lowest f0


def repitch(log_mel: np.ndarray, f0: np.ndarray, conv: Convention = DEFAULT,
            keep: int = 10) -> np.ndarray:  # fmt: skip
    """A log-mel ``(n_mels, k)`` moved to the pitches ``f0`` ``(k,)`` (Hz) with its formants
    kept: each frame's envelope (:func:`envelope`) plus the harmonic ripple that a comb at
    its f0 leaves in the mel under the analysis window (tabulated 6.25 cents apart,
    interpolated). Frames with f0 <= 0 are returned as they are. The harmonic vocoder's
    training shows it mels re-rippled this way (``[vocoder] repitch_mix``), so it sounds the
    f0 it is given and takes only the envelope from the mel."""
    log_mel = np.asarray(log_mel, np.float32)
    f0 = np.asarray(f0, np.float64)
    out = log_mel.copy()
    on = np.flatnonzero(f0 > 0)
    if on.size == 0:
        return out
    top = int(np.log2(conv.sample_rate / 2 / _RIPPLE_LO) * _RIPPLE_STEPS)  # at Nyquist
    pos = np.minimum(np.log2(np.maximum(f0[on], _RIPPLE_LO) / _RIPPLE_LO) * _RIPPLE_STEPS, top)
    i0 = np.floor(pos).astype(np.int64)
    w = (pos - i0).astype(np.float32)
    table = _ripples(conv, keep, np.unique(np.concatenate([i0, i0 + 1])))
    ripple = table[:, i0] * (1 - w) + table[:, i0 + 1] * w
    out[:, on] = ripple + envelope(log_mel[:, on], keep)
    return out


_RIPPLE_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _ripples(conv: Convention, keep: int, need: np.ndarray) -> np.ndarray:
    """The comb ripple table (log-mel minus its envelope) ``(n_mels, n)``, column ``i`` the
    ripple at ``_RIPPLE_LO * 2 ** (i / _RIPPLE_STEPS)`` Hz; the columns in ``need`` are
    computed on first use (about 2 ms each) and kept per convention."""
    n = int(np.log2(conv.sample_rate / 2 / _RIPPLE_LO) * _RIPPLE_STEPS) + 2
    key = (conv, keep)
    if key not in _RIPPLE_TABLES:
        _RIPPLE_TABLES[key] = (np.zeros((conv.n_mels, n), np.float32), np.zeros(n, bool))
    table, have = _RIPPLE_TABLES[key]
    need = np.minimum(need, n - 1)
    todo = need[~have[need]]
    if todo.size:
        win = _sp.window(conv.n_fft, conv.win_length)
        basis = mel_basis(conv, np.float64)
        t = np.arange(conv.n_fft) / conv.sample_rate
        cols = []
        for i in todo:
            hz = _RIPPLE_LO * 2.0 ** (i / _RIPPLE_STEPS)
            k = np.arange(1, max(1, int(conv.sample_rate / 2 / hz)) + 1)
            comb = np.cos(2 * np.pi * hz * np.outer(k, t)).sum(0)
            spec = basis @ np.abs(np.fft.rfft(comb * win))
            cols.append(np.log(np.maximum(spec, conv.log_clamp)))
        m = np.stack(cols, 1).astype(np.float32)
        table[:, todo] = m - envelope(m, keep)
        have[todo] = True
    return table


def _dct_ortho(n: int, k: int) -> np.ndarray:
    """First ``k`` rows of the orthonormal DCT-II matrix of size ``n`` (scipy's norm='ortho')."""
    i = np.arange(n)
    d = np.cos(np.pi / n * (i[None, :] + 0.5) * np.arange(k)[:, None]) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def mfcc(
    y: np.ndarray, conv: Convention = DEFAULT, n_mfcc: int = 20, top_db: float | None = 80.0
) -> np.ndarray:
    """MFCCs ``(n_mfcc, frames)`` as ``librosa.feature.mfcc`` computes them: power mel,
    ``power_to_db`` (ref 1, amin 1e-10, ``top_db``), orthonormal DCT-II. Pass
    ``dsp.convention.librosa_center()`` to reproduce librosa's framing exactly.
    """
    y = checks.audio(y)
    if not 1 <= n_mfcc <= conv.n_mels:
        raise ValueError(f"n_mfcc must be in 1..n_mels ({conv.n_mels}), got {n_mfcc}")
    S = _sp.stft(y.astype(np.float64), conv)
    power = mel_basis(conv, np.float64) @ (S.real**2 + S.imag**2)
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    if top_db is not None and db.size:
        db = np.maximum(db, db.max() - top_db)
    return (_dct_ortho(conv.n_mels, n_mfcc) @ db).astype(np.float32)
