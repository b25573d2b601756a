"""Phase reconstruction from magnitudes: Griffin-Lim (batch) and RTISI-LA (streaming).

Together with :func:`dsp.mel.mel_to_magnitude` they make the DSP vocoder: a log-mel stream
can be heard with no trained model, and every neural vocoder is measured against it.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from dsp import checks
from dsp import spectral as _sp
from dsp.convention import DEFAULT, Convention


def griffin_lim(
    mag: np.ndarray,
    conv: Convention = DEFAULT,
    n_iter: int = 32,
    momentum: float = 0.99,
    seed: int = 0,
) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al., librosa's default momentum 0.99) from a
    ``(n_bins, frames)`` magnitude; returns float32 audio of :func:`dsp.stft.istft`'s length.
    Random initial phase from ``seed``, so the output is reproducible.
    """
    mag = checks.spectrum(mag, conv.n_bins, "mag", complex_ok=False).astype(np.float64)
    if n_iter < 0 or not 0 <= momentum < 1:
        raise ValueError(f"need n_iter >= 0 and 0 <= momentum < 1, got {n_iter}, {momentum}")
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(mag.shape))
    prev = np.zeros_like(angles)
    length = None
    for _ in range(n_iter):
        y = _sp.istft(mag * angles, conv)
        length = y.size
        rebuilt = _sp.stft(y, conv)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles /= np.abs(angles) + 1e-16
        prev = rebuilt
    return _sp.istft(mag * angles, conv, length).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _rtisi_frame(acc, wacc, contrib, spec, mags, j, new_mag, win, hop, iters):  # pragma: no cover
    """Add one magnitude frame to the look-ahead window and refine every active frame.

    acc/wacc: OLA signal and window-square sum from the oldest active frame's start;
    contrib: (K+1, n_fft) each active frame's windowed time signal; spec/mags: its
    spectrum and target magnitude. The new frame goes to slot ``j``.
    """
    n_fft = win.shape[0]
    o = j * hop
    seg = acc[o : o + n_fft] * win
    guess = np.fft.rfft(seg)
    for k in range(guess.shape[0]):
        a = np.abs(guess[k])
        spec[j, k] = new_mag[k] * (guess[k] / a if a > 1e-12 else 1.0 + 0j)
        mags[j, k] = new_mag[k]
    contrib[j] = np.fft.irfft(spec[j], n_fft) * win
    acc[o : o + n_fft] += contrib[j]
    wacc[o : o + n_fft] += win * win
    for _ in range(iters):
        for s in range(j + 1):
            o = s * hop
            x = np.fft.rfft(acc[o : o + n_fft] * win)
            for k in range(x.shape[0]):
                a = np.abs(x[k])
                if a > 1e-12:
                    spec[s, k] = mags[s, k] * x[k] / a
            new = np.fft.irfft(spec[s], n_fft) * win
            acc[o : o + n_fft] += new - contrib[s]
            contrib[s] = new


@numba.njit(cache=True, nogil=True)
def _rtisi_run(acc, wacc, contrib, spec, mags, n_active, mag, win, hop, iters, tiny, out):
    """Every frame of ``mag`` (k, n_bins) through :func:`_rtisi_frame`; each committed frame's
    first hop, divided by the window-square sum, goes to ``out``. Returns ``(n_active,
    samples written)``. Runs in one call, so a chunk costs no Python per frame."""
    lookahead = contrib.shape[0] - 1
    n = 0
    for t in range(mag.shape[0]):
        _rtisi_frame(acc, wacc, contrib, spec, mags, n_active, mag[t], win, hop, iters)
        n_active += 1
        if n_active == lookahead + 1:  # the oldest frame is done: its first hop is final
            for i in range(hop):
                out[n + i] = acc[i] / wacc[i] if wacc[i] > tiny else acc[i]
            n += hop
            m = acc.shape[0]
            acc[: m - hop] = acc[hop:].copy()
            acc[m - hop :] = 0.0
            wacc[: m - hop] = wacc[hop:].copy()
            wacc[m - hop :] = 0.0
            for s in range(lookahead):
                contrib[s] = contrib[s + 1]
                spec[s] = spec[s + 1]
                mags[s] = mags[s + 1]
            n_active -= 1
    return n_active, n


class RtisiState(NamedTuple):
    acc: np.ndarray
    wacc: np.ndarray
    contrib: np.ndarray
    spec: np.ndarray
    mags: np.ndarray
    n_active: int  # frames in the look-ahead window, at most lookahead
    skip: int  # leading padded samples still to drop
    fed: int  # frames in so far


class Rtisi:
    """Real-time iterative spectrogram inversion with look-ahead (RTISI-LA, Zhu et al. 2007).

    Magnitude frames ``(n_bins, k)`` in, float32 samples out, with explicit state. Each frame
    is refined ``iters`` times on its own arrival and on each of the ``lookahead`` after it,
    then committed. ``delay = lookahead * hop + pad`` samples: after ``n`` frames in,
    ``n * hop - delay`` samples are out; :meth:`flush` gives the rest, :meth:`offline` runs a
    whole spectrogram through the same code.
    """

    def __init__(self, conv: Convention = DEFAULT, lookahead: int = 2, iters: int = 4):
        if lookahead < 0 or iters < 0:
            raise ValueError(f"lookahead and iters must be >= 0, got {lookahead}, {iters}")
        self.conv = conv
        self.lookahead = lookahead
        self.iters = iters
        self.delay = lookahead * conv.hop_length + conv.pad
        self._win = _sp.window(conv.n_fft, conv.win_length)

    def initial_state(self) -> RtisiState:
        c, k = self.conv, self.lookahead + 1
        n = (k - 1) * c.hop_length + c.n_fft
        return RtisiState(
            np.zeros(n),
            np.zeros(n),
            np.zeros((k, c.n_fft)),
            np.zeros((k, c.n_bins), np.complex128),
            np.zeros((k, c.n_bins)),
            0,
            c.pad,
            0,
        )

    @staticmethod
    def _out(y: np.ndarray, w: np.ndarray, skip: int) -> tuple[np.ndarray, int]:
        nz = w > _sp._TINY
        y = y.copy()
        y[nz] /= w[nz]
        drop = min(skip, y.size)
        return y[drop:].astype(np.float32), skip - drop

    def stream(
        self, mag: np.ndarray, state: RtisiState | None = None
    ) -> tuple[np.ndarray, RtisiState]:
        c, hop = self.conv, self.conv.hop_length
        mag = checks.spectrum(mag, c.n_bins, "mag", complex_ok=False)
        st = state if state is not None else self.initial_state()
        acc, wacc = st.acc.copy(), st.wacc.copy()
        contrib, spec, mags = st.contrib.copy(), st.spec.copy(), st.mags.copy()
        out = np.zeros(mag.shape[1] * hop)
        n_active, n = _rtisi_run(acc, wacc, contrib, spec, mags, st.n_active,
                                 np.ascontiguousarray(mag.T, dtype=np.float64), self._win, hop,
                                 self.iters, _sp._TINY, out)  # fmt: skip
        drop = min(st.skip, n)
        y, skip = out[drop:n].astype(np.float32), st.skip - drop
        fed = st.fed + mag.shape[1]
        return y, RtisiState(acc, wacc, contrib, spec, mags, n_active, skip, fed)

    def flush(self, state: RtisiState | None) -> np.ndarray:
        c = self.conv
        st = state if state is not None else self.initial_state()
        if st.fed == 0:
            return np.zeros(0, np.float32)
        n = (st.n_active - 1) * c.hop_length + c.n_fft
        y, _ = self._out(st.acc[:n], st.wacc[:n], st.skip)
        return y[: max(y.size - c.pad, 0)]

    def offline(self, mag: np.ndarray) -> np.ndarray:
        y, st = self.stream(mag)
        return np.concatenate((y, self.flush(st)))
