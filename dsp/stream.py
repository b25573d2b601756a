"""Streaming STFT analysis and overlap-add synthesis with explicit state.

Both follow the streaming contract of DESIGN.md: ``out, state = obj.stream(x, state)`` with
no hidden mutable state (``state=None`` starts a stream), ``obj.flush(state)`` drains the
tail, and ``obj.delay`` is a number. Concatenated outputs over any block sizes equal the
batch functions (:func:`dsp.stft.stft`, :func:`dsp.mel.log_mel`, :func:`dsp.stft.istft`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dsp import checks
from dsp import mel as _mel
from dsp import spectral as _sp
from dsp.convention import DEFAULT, Convention

FEATURES = ("stft", "log_mel")


class AnalyzerState(NamedTuple):
    held: np.ndarray  # raw samples held until the leading reflect pad can be built
    pending: np.ndarray  # padded samples from the next frame's start on
    tail: np.ndarray  # the last pad + 1 raw samples, for the trailing reflect pad
    started: bool


class Analyzer:
    """Samples in any block size -> frames: complex ``(n_bins, k)`` (``feature="stft"``) or
    float32 log-mel ``(n_mels, k)`` (``feature="log_mel"``).

    ``delay``: samples of look-ahead past a frame's own hop before it can be emitted
    (``n_fft - hop - pad``, 384 for the default convention).
    """

    def __init__(self, conv: Convention = DEFAULT, feature: str = "log_mel", dtype=np.float32):
        if feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
        self.conv = conv
        self.feature = feature
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.delay = conv.n_fft - conv.hop_length - conv.pad
        self._win = _sp.window(conv.n_fft, conv.win_length).astype(self.dtype)
        self._need = conv.pad + 1 if conv.pad_mode == "reflect" and conv.pad else 0

    def _empty(self) -> np.ndarray:
        c = self.conv
        if self.feature == "log_mel":
            return np.zeros((c.n_mels, 0), np.float32)
        return np.zeros((c.n_bins, 0), np.complex64 if self.dtype == np.float32 else np.complex128)

    def _analyse(self, padded: np.ndarray, n_frames: int) -> np.ndarray:
        if self.feature == "log_mel":
            return _mel.log_mel_padded(padded, n_frames, self._win, self.conv)
        return _sp._stft_kernel(padded, self._win, self.conv.hop_length, n_frames).T

    def initial_state(self) -> AnalyzerState:
        e = np.zeros(0, self.dtype)
        return AnalyzerState(e, e, e, False)

    def stream(
        self, x: np.ndarray, state: AnalyzerState | None = None
    ) -> tuple[np.ndarray, AnalyzerState]:
        """Feed a block of samples (any length, 0 included); returns the frames now complete."""
        c = self.conv
        x = checks.audio(x, "x", allow_empty=True).astype(self.dtype, copy=False)
        st = state if state is not None else self.initial_state()
        tail = np.concatenate((st.tail, x))[-(c.pad + 1) :]
        if st.started:
            pending = np.concatenate((st.pending, x))
            held = st.held
        else:
            held = np.concatenate((st.held, x))
            if held.size < self._need:
                return self._empty(), AnalyzerState(held, st.pending, tail, False)
            lead = held[1 : c.pad + 1][::-1] if c.pad_mode == "reflect" else np.zeros(c.pad)
            pending = np.concatenate((lead.astype(self.dtype), held))
            held = held[:0]
        n = 0 if pending.size < c.n_fft else 1 + (pending.size - c.n_fft) // c.hop_length
        out = self._analyse(pending, n) if n else self._empty()
        return out, AnalyzerState(held, pending[n * c.hop_length :], tail, True)

    def flush(self, state: AnalyzerState | None) -> np.ndarray:
        """Frames that need the end of the signal (trailing pad). The stream is then over."""
        c = self.conv
        st = state if state is not None else self.initial_state()
        if not st.started:  # too short to have started: the batch path covers every case
            if st.held.size == 0:
                return self._empty()
            n = c.n_frames(st.held.size)
            return self._analyse(_sp.pad(st.held, c), n) if n else self._empty()
        trail = st.tail[:-1][::-1] if c.pad_mode == "reflect" else np.zeros(c.pad, self.dtype)
        pending = np.concatenate((st.pending, trail[: c.pad]))
        n = 0 if pending.size < c.n_fft else 1 + (pending.size - c.n_fft) // c.hop_length
        return self._analyse(pending, n) if n else self._empty()


class SynthesizerState(NamedTuple):
    ola: np.ndarray  # overlap-add accumulator, n_fft - hop samples
    wsum: np.ndarray  # window-square sum over the same samples
    skip: int  # leading padded samples still to drop
    fed: int  # frames in so far


class Synthesizer:
    """Complex frames ``(n_bins, k)`` in -> samples out, by windowed overlap-add.

    After ``n`` frames in, ``n * hop - pad`` samples are out (``delay = pad`` samples);
    :meth:`flush` gives the last ones, so the total equals :func:`dsp.stft.istft`.
    """

    def __init__(self, conv: Convention = DEFAULT, dtype=np.float32):
        self.conv = conv
        self.dtype = np.dtype(dtype)
        self.delay = conv.pad
        self._win = _sp.window(conv.n_fft, conv.win_length).astype(self.dtype)

    def initial_state(self) -> SynthesizerState:
        n = self.conv.n_fft - self.conv.hop_length
        return SynthesizerState(np.zeros(n, self.dtype), np.zeros(n, self.dtype), self.conv.pad, 0)

    def _emit(self, y: np.ndarray, wsum: np.ndarray, skip: int) -> tuple[np.ndarray, int]:
        nz = wsum > _sp._TINY
        y = y.copy()
        y[nz] /= wsum[nz]
        drop = min(skip, y.size)
        return y[drop:], skip - drop

    def stream(
        self, S: np.ndarray, state: SynthesizerState | None = None
    ) -> tuple[np.ndarray, SynthesizerState]:
        c = self.conv
        st = state if state is not None else self.initial_state()
        S = checks.spectrum(S, c.n_bins)
        if S.shape[1] == 0:
            return np.zeros(0, self.dtype), st
        cdtype = np.complex64 if self.dtype == np.float32 else np.complex128
        y, wsum = _sp._ola_kernel(np.ascontiguousarray(S.T, dtype=cdtype), self._win, c.hop_length)
        keep = st.ola.size
        y[:keep] += st.ola
        wsum[:keep] += st.wsum
        done = S.shape[1] * c.hop_length
        out, skip = self._emit(y[:done], wsum[:done], st.skip)
        return out, SynthesizerState(y[done:], wsum[done:], skip, st.fed + S.shape[1])

    def flush(self, state: SynthesizerState | None) -> np.ndarray:
        st = state if state is not None else self.initial_state()
        if st.fed == 0:
            return np.zeros(0, self.dtype)
        out, _ = self._emit(st.ola, st.wsum, st.skip)
        return out[: max(out.size - self.conv.pad, 0)]
