"""The source half of the harmonic vocoder: a band-limited harmonic source at the frame f0
plus white noise, each shaped frame by frame by a filter given as a complex frequency
response, windowed and overlap-added. No torch: the filters come from a network elsewhere
(:mod:`model.harmonic`), this module only makes and filters the excitation.

Timing. Frame ``t`` of the convention is centred on sample ``c_t = t * hop + hop / 2``. The
f0 moves linearly from one frame centre to the next, so the source between ``c_t`` and
``c_{t+1}`` is known once frame ``t + 1`` has arrived. Frame ``t``'s segment is the source
over ``[c_{t-1}, c_{t+1})`` (``2 * hop`` samples) under a periodic Hann window (which sums to
one at that hop); its spectrum (``n_fft`` points, zero padded) is multiplied by the frame's
harmonic and noise responses and the ``n_fft`` samples that come back are added in from
``c_{t-1}``. The responses are causal (minimum phase), so the first unprocessed frame
touches nothing before ``c_{t-1}``: :attr:`SourceFilter.delay` is ``hop + hop / 2`` samples.

Source. The harmonic part is ``sum_k cos(k phi)`` over the harmonics below ``nyquist_ratio *
sr / 2``, each of amplitude one, the last one faded in by its fraction (so the sum is
continuous as f0 glides), by the Dirichlet kernel in closed form. The phase ``phi`` is
carried across chunks in float64. The noise is uniform white noise of unit variance from a
counter-based generator (the same samples however the frames are chunked). Where a frame
is unvoiced (f0 = 0) the oscillator keeps the last voiced f0 (its filter is the network's
business; :mod:`model.harmonic` silences it there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from dsp.convention import DEFAULT, Convention

_TWO_PI = 2.0 * np.pi
UNVOICED_F0 = 100.0  # the oscillator's f0 before the first voiced frame


@numba.njit(cache=True, nogil=True, fastmath=False)
def _noise(counter: np.uint64) -> float:  # pragma: no cover
    """splitmix64 of ``counter`` -> uniform in [-sqrt 3, sqrt 3) (unit variance)."""
    z = counter + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    u = float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return (2.0 * u - 1.0) * 1.7320508075688772


@numba.njit(cache=True, nogil=True, fastmath=False)
def _source(f0a, f0b, n, phase, limit, sr, counter, harm, noise):  # pragma: no cover
    """``n`` samples of source, f0 moving linearly from ``f0a`` to ``f0b``, into ``harm`` and
    ``noise``; returns the phase after them."""
    for i in range(n):
        f = f0a + (f0b - f0a) * (i / n)
        phase += _TWO_PI * f / sr
        if phase >= _TWO_PI:
            phase -= _TWO_PI * np.floor(phase / _TWO_PI)
        kr = limit / f
        k = np.floor(kr)
        half = 0.5 * phase
        s = np.sin(half)
        if abs(s) < 1e-9:
            d = k
        else:
            d = np.sin((k + 0.5) * phase) / (2.0 * s) - 0.5
        harm[i] = d + (kr - k) * np.cos((k + 1.0) * phase)
        noise[i] = _noise(counter + np.uint64(i))
    return phase


@numba.njit(cache=True, nogil=True)
def _frames(f0, hh, hn, prev_f0, last_voiced, phase, counter, half_h, half_n, ola, win,
            hop, n_fft, limit, sr):  # pragma: no cover  # fmt: skip
    """Process frames ``0 .. len(f0) - 2`` of the chunk (frame ``j``'s source needs frame
    ``j + 1``'s f0): returns the ``hop * (len(f0) - 1)`` samples now final and the new state
    scalars. ``prev_f0`` is the oscillator f0 at the first frame's centre."""
    n_out = f0.shape[0] - 1
    out = np.zeros(n_out * hop)
    seg_h = np.zeros(n_fft)
    seg_n = np.zeros(n_fft)
    new_h = np.zeros(hop)
    new_n = np.zeros(hop)
    fa = prev_f0
    for j in range(n_out):
        nxt = f0[j + 1]
        if nxt > 0:
            last_voiced = nxt
        fb = nxt if nxt > 0 else last_voiced
        phase = _source(fa, fb, hop, phase, limit, sr, counter, new_h, new_n)
        counter += np.uint64(hop)
        for i in range(hop):
            seg_h[i] = half_h[i] * win[i]
            seg_n[i] = half_n[i] * win[i]
            seg_h[hop + i] = new_h[i] * win[hop + i]
            seg_n[hop + i] = new_n[i] * win[hop + i]
            half_h[i] = new_h[i]
            half_n[i] = new_n[i]
        spec = np.fft.rfft(seg_h) * hh[j] + np.fft.rfft(seg_n) * hn[j]
        y = np.fft.irfft(spec, n_fft)
        for i in range(n_fft):
            ola[i] += y[i]
        for i in range(hop):
            out[j * hop + i] = ola[i]
        for i in range(n_fft - hop):
            ola[i] = ola[i + hop]
        for i in range(n_fft - hop, n_fft):
            ola[i] = 0.0
        fa = fb
    return out, fa, last_voiced, phase, counter


@dataclass
class SourceState:
    """Where a stream stands: ``started`` once frame 0 arrived (its f0 sets the oscillator);
    ``f0``: the oscillator's f0 at the centre of the last frame received; ``pending``: that
    frame's responses, processed when the next frame's f0 comes; the source of the half
    segment before it; the overlap-add tail; ``skip``: output samples still to drop (those
    before sample 0)."""

    started: bool = False
    f0: float = 0.0
    last_voiced: float = 100.0
    phase: float = 0.0
    counter: int = 0
    pending: tuple | None = None
    half_h: np.ndarray = field(default_factory=lambda: np.zeros(0))
    half_n: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ola: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skip: int = 0


class SourceFilter:
    """Frames of (f0, harmonic response, noise response) -> audio, offline or streaming.

    ``f0``: ``(T,)`` Hz, 0 where unvoiced. ``harmonic``, ``noise``: ``(T, n_fft // 2 + 1)``
    complex frequency responses (causal). ``seed`` picks the noise."""

    def __init__(self, conv: Convention = DEFAULT, nyquist_ratio: float = 0.98, seed: int = 0):
        if conv.win_length != conv.n_fft or conv.n_fft < 2 * conv.hop_length:
            raise ValueError("the harmonic source needs win_length == n_fft >= 2 * hop_length")
        self.conv, self.seed = conv, seed
        self.hop, self.n_fft, self.sr = conv.hop_length, conv.n_fft, float(conv.sample_rate)
        self.limit = nyquist_ratio * self.sr / 2
        n = 2 * self.hop
        self.win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
        self.delay = self.hop + self.hop // 2

    def initial_state(self) -> SourceState:
        z = np.zeros
        return SourceState(half_h=z(self.hop), half_n=z(self.hop), ola=z(self.n_fft),
                           skip=self.hop // 2)  # fmt: skip

    def check(self, f0: np.ndarray, harmonic: np.ndarray, noise: np.ndarray):
        f0 = np.asarray(f0, np.float64)
        bins = self.n_fft // 2 + 1
        if f0.ndim != 1:
            raise ValueError(f"f0 must be (frames,) in Hz; got shape {f0.shape}")
        if not np.isfinite(f0).all() or (f0 < 0).any() or (f0 >= self.sr / 2).any():
            raise ValueError(
                f"f0 must be finite, >= 0 (0 = unvoiced) and below Nyquist ({self.sr / 2:.0f}"
                " Hz) in every frame; clean the contour (NaN -> 0) before vocoding"
            )
        for name, h in (("harmonic", harmonic), ("noise", noise)):
            if h.shape != (f0.size, bins):
                raise ValueError(
                    f"{name} response must be (frames, {bins}) to match f0's {f0.size} "
                    f"frames; got {h.shape}"
                )
        return (
            f0,
            np.ascontiguousarray(harmonic, np.complex128),
            np.ascontiguousarray(noise, np.complex128),
        )

    def stream(self, f0, harmonic, noise, state: SourceState | None = None):
        """A chunk of frames -> ``(samples now final, state)``."""
        f0, hh, hn = self.check(f0, harmonic, noise)
        st = state if state is not None else self.initial_state()
        if f0.size == 0:
            return np.zeros(0, np.float32), st
        if not st.started:
            first = f0[0] if f0[0] > 0 else UNVOICED_F0  # no look-ahead: a stream cannot have it
            st.started, st.f0, st.last_voiced = True, float(first), float(first)
            st.counter = self.seed << 32
            st.phase = _source_run(
                np.array([first, first]),
                0.0,
                self.limit,
                self.sr,
                np.uint64(st.counter),
                self.hop,
                st.half_h,
                st.half_n,
            )
            st.counter += self.hop
            st.pending = (f0[0], hh[0], hn[0])
            f0, hh, hn = f0[1:], hh[1:], hn[1:]
            if f0.size == 0:
                return np.zeros(0, np.float32), st
        pf, ph, pn = st.pending
        f0s = np.concatenate([[pf], f0])
        hhs = np.concatenate([ph[None], hh])
        hns = np.concatenate([pn[None], hn])
        return self._run(f0s, hhs, hns, st)

    def _run(self, f0s, hhs, hns, st: SourceState):
        out, st.f0, st.last_voiced, st.phase, counter = _frames(
            f0s, hhs, hns, st.f0, st.last_voiced, st.phase, np.uint64(st.counter),
            st.half_h, st.half_n, st.ola, self.win, self.hop, self.n_fft, self.limit,
            self.sr,
        )  # fmt: skip
        st.counter = int(counter)
        st.pending = (f0s[-1], hhs[-1], hns[-1])
        drop = min(st.skip, out.size)
        st.skip -= drop
        return out[drop:].astype(np.float32), st

    def flush(self, state: SourceState | None) -> np.ndarray:
        """The last ``delay`` samples: the last frame processed (its successor's f0 taken as
        its own) and the tail up to its end."""
        if state is None or not state.started:
            return np.zeros(0, np.float32)
        pf, ph, pn = state.pending
        f0s = np.array([pf, pf])
        z = np.zeros_like(ph)
        out, _ = self._run(f0s, np.stack([ph, z]), np.stack([pn, z]), state)
        tail = state.ola[: self.hop // 2].astype(np.float32)
        return np.concatenate([out, tail])

    def __call__(self, f0, harmonic, noise) -> np.ndarray:
        """Offline: ``(T * hop,)`` float32 audio, the streamed samples exactly."""
        y, st = self.stream(f0, harmonic, noise)
        return np.concatenate([y, self.flush(st)])

    def source(self, f0: np.ndarray, start_phase: float = 0.0, seed: int | None = None):
        """The excitation alone, for training: ``(harmonic, noise)`` over ``[c_{-1},
        c_{T-1})`` (``T * hop`` samples: frame ``t``'s segment is ``[t * hop, t * hop + 2 *
        hop)`` of it), f0 held before frame 0 and through unvoiced frames, as a stream makes
        it, and the phase after."""
        f0 = np.asarray(f0, np.float64)
        counter = (self.seed if seed is None else seed) << 32
        voiced = np.where(f0 > 0, f0, 0.0)
        held = _hold(voiced)
        fs = np.concatenate([[held[0]], held])
        harm = np.zeros(f0.size * self.hop)
        noise = np.zeros(f0.size * self.hop)
        ph = _source_run(fs, start_phase, self.limit, self.sr, np.uint64(counter), self.hop,
                         harm, noise)  # fmt: skip
        return harm, noise, ph


def _hold(f0: np.ndarray) -> np.ndarray:
    """Unvoiced frames take the last voiced f0 (:data:`UNVOICED_F0` before any), as the
    oscillator does."""
    out = f0.copy()
    last = UNVOICED_F0
    for i in range(out.size):
        if out[i] > 0:
            last = out[i]
        else:
            out[i] = last
    return out


@numba.njit(cache=True, nogil=True)
def _source_run(fs, phase, limit, sr, counter, hop, harm, noise):  # pragma: no cover
    for j in range(fs.size - 1):
        phase = _source(fs[j], fs[j + 1], hop, phase, limit, sr, counter,
                        harm[j * hop : (j + 1) * hop], noise[j * hop : (j + 1) * hop])  # fmt: skip
        counter += np.uint64(hop)
    return phase
