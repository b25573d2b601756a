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
``c_{t-1}``. The responses are causal, so the first unprocessed frame touches nothing before
``c_{t-1}``: :attr:`SourceFilter.delay` is ``hop + hop / 2`` samples, plus ``taps / 2`` for
linear-phase responses (``taps`` > 0: each one's zero-phase impulse response windowed to
``taps`` samples and delayed by half of them; the output is moved back by as much, so that
sample ``n`` is still the input's sample ``n``). Log-magnitude responses are made minimum
phase (``taps`` 0) or linear phase here.

Source. The harmonic part is ``sum_k cos(k phi)`` over the harmonics below ``nyquist_ratio *
sr / 2``, each of amplitude one, the last one faded in by its fraction (so the sum is
continuous as f0 glides), by the Dirichlet kernel in closed form. The phase ``phi`` is
carried across chunks in float64. The noise is uniform white noise of unit variance from a
counter-based generator (the same samples however the frames are chunked). Where a frame
is unvoiced (f0 = 0) the oscillator keeps the last voiced f0 (its filter is the network's
business; :mod:`model.harmonic` silences it there).
"""

from __future__ import annotations

import itertools

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


@numba.njit(cache=True, nogil=True, fastmath=False, inline="always")
def _tick(phase, f0a, f0b, i, n, sr):  # pragma: no cover
    """Sample ``i`` of ``n``: the f0 there (linear from ``f0a`` to ``f0b``) and the phase
    after it, wrapped. One definition for :func:`_source` and :func:`_advance`: the
    fast-forward of the offline split must reach the phase's bits."""
    f = f0a + (f0b - f0a) * (i / n)
    phase += _TWO_PI * f / sr
    if phase >= _TWO_PI:
        phase -= _TWO_PI * np.floor(phase / _TWO_PI)
    return phase, f


@numba.njit(cache=True, nogil=True, fastmath=False)
def _advance(f0a, f0b, n, phase, sr):  # pragma: no cover
    """The phase after :func:`_source`'s ``n`` samples, without the source."""
    for i in range(n):
        phase, _ = _tick(phase, f0a, f0b, i, n, sr)
    return phase


@numba.njit(cache=True, nogil=True, fastmath=False)
def _source(f0a, f0b, n, phase, limit, sr, counter, harm, noise):  # pragma: no cover
    """``n`` samples of source, f0 moving linearly from ``f0a`` to ``f0b``, into ``harm`` and
    ``noise``; returns the phase after them."""
    for i in range(n):
        phase, f = _tick(phase, f0a, f0b, i, n, sr)
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
def _min_phase(log_mag, n_fft):  # pragma: no cover
    """Natural-log magnitude ``(bins,)`` -> the minimum-phase response with it (the folded
    real cepstrum; :func:`model.harmonic.minimum_phase` in float64)."""
    c = np.fft.irfft(log_mag.astype(np.float64), n_fft)
    half = n_fft // 2
    for i in range(1, half):
        c[i] *= 2.0
    for i in range(half + 1, n_fft):
        c[i] = 0.0
    return np.exp(np.fft.rfft(c))


def taps_window(taps: int) -> np.ndarray:
    """The periodic Hann window a linear-phase response is cut to (empty: minimum phase)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(taps) / max(taps, 1))


@numba.njit(cache=True, nogil=True)
def _response(log_mag, n_fft, wt):  # pragma: no cover
    """Natural-log magnitude ``(bins,)`` -> a causal response: minimum phase (``wt`` empty),
    or linear phase: the zero-phase impulse response under the ``taps``-long window ``wt``
    (:func:`taps_window`), delayed by ``taps / 2`` (:func:`model.harmonic.linear_phase` in
    float64). A linear phase changes no harmonic's phase as the filter changes from frame to
    frame; a minimum phase moves them with the formants (measured: 7 cents of pitch wobble on
    sung vowels, against 2)."""
    taps = wt.shape[0]
    if taps == 0:
        return _min_phase(log_mag, n_fft)
    m = np.empty(log_mag.shape[0])
    for i in range(m.shape[0]):
        m[i] = np.exp(np.float64(log_mag[i]))
    ir = np.fft.irfft(m, n_fft)
    h = np.zeros(n_fft)
    half = taps // 2
    for i in range(half):
        h[i] = ir[n_fft - half + i] * wt[i]
    for i in range(half, taps):
        h[i] = ir[i - half] * wt[i]
    return np.fft.rfft(h)


@numba.njit(cache=True, nogil=True)
def _responses(lh, ln, hv, a, b, hh, hn, n_fft, wt):  # pragma: no cover
    """Frames ``a .. b - 1`` of :func:`_set_pending`'s responses into ``hh``, ``hn``."""
    for j in range(a, b):
        if hv[j]:
            hh[j, :] = _response(lh[j], n_fft, wt)
        else:
            hh[j, :] = 0.0
        hn[j, :] = _response(ln[j], n_fft, wt)


_POOL: list = []  # the second thread, made when first needed


def helper():
    """A second thread for work split in halves (the kernels release the GIL): this
    module's offline synthesis and responses, and :mod:`model.kernels`' networks."""
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="melgand-half"))
    return _POOL[0]


# the state of one stream, packed so that many streams stack into arrays for one kernel call
_PHASE, _F0, _LAST, _PEND_F0, _SCALARS = 0, 1, 2, 3, 4  # buf[:_SCALARS]; then half_h, half_n, ola
_STARTED, _COUNTER, _SKIP = 0, 1, 2  # ints


@numba.njit(cache=True, nogil=True)
def _voice(buf, ints, pend, f0, hh, hn, lh, ln, hv, log, flush, out, win, hop, n_fft,
           limit, sr, wt):  # pragma: no cover  # fmt: skip
    """One stream's chunk of frames (and, if ``flush``, its end) into ``out``; returns how
    many samples are now final. ``log``: the responses come as log magnitudes ``lh`` /
    ``ln`` (the harmonic one silenced where ``hv`` is false), made responses here; else
    as the complex ``hh`` / ``hn``. ``pend`` holds the last frame's two responses, processed
    once the next frame's f0 is known (frame ``j``'s source needs frame ``j + 1``'s f0)."""
    n = f0.shape[0]
    half_h = buf[_SCALARS : _SCALARS + hop]
    half_n = buf[_SCALARS + hop : _SCALARS + 2 * hop]
    ola = buf[_SCALARS + 2 * hop : _SCALARS + 2 * hop + n_fft]
    j0 = 0
    if n > 0 and ints[_STARTED] == 0:
        first = f0[0] if f0[0] > 0 else UNVOICED_F0  # no look-ahead: a stream cannot have it
        ints[_STARTED] = 1
        buf[_F0] = first
        buf[_LAST] = first
        counter = np.uint64(ints[_COUNTER])
        buf[_PHASE] = _source(first, first, hop, 0.0, limit, sr, counter, half_h, half_n)
        ints[_COUNTER] += hop
        j0 = 1
        _set_pending(pend, buf, f0, hh, hn, lh, ln, hv, log, 0, n_fft, wt)
    if ints[_STARTED] == 0:
        return 0
    n_out = 0
    new_h = np.empty(hop)
    new_n = np.empty(hop)
    seg_h = np.zeros(n_fft)
    seg_n = np.zeros(n_fft)
    n_proc = n - j0 + (1 if flush else 0)
    for j in range(n_proc):
        nxt = f0[j0 + j] if j0 + j < n else buf[_PEND_F0]
        if nxt > 0:
            buf[_LAST] = nxt
        fb = nxt if nxt > 0 else buf[_LAST]
        counter = np.uint64(ints[_COUNTER])
        buf[_PHASE] = _source(buf[_F0], fb, hop, buf[_PHASE], limit, sr, counter, new_h, new_n)
        ints[_COUNTER] += hop
        buf[_F0] = fb
        for i in range(hop):
            seg_h[i] = half_h[i] * win[i]
            seg_n[i] = half_n[i] * win[i]
            seg_h[hop + i] = new_h[i] * win[hop + i]
            seg_n[hop + i] = new_n[i] * win[hop + i]
            half_h[i] = new_h[i]
            half_n[i] = new_n[i]
        spec = np.fft.rfft(seg_h) * pend[0] + np.fft.rfft(seg_n) * pend[1]
        y = np.fft.irfft(spec, n_fft)
        for i in range(n_fft):
            ola[i] += y[i]
        n_out = _emit(ola, ints, out, n_out, hop)
        for i in range(n_fft - hop):
            ola[i] = ola[i + hop]
        for i in range(n_fft - hop, n_fft):
            ola[i] = 0.0
        if j0 + j < n:
            _set_pending(pend, buf, f0, hh, hn, lh, ln, hv, log, j0 + j, n_fft, wt)
    if flush:
        n_out = _emit(ola, ints, out, n_out, hop // 2 + wt.shape[0] // 2)
    return n_out


@numba.njit(cache=True, nogil=True)
def _emit(ola, ints, out, n_out, count):  # pragma: no cover
    """``ola[:count]`` out, less the samples before sample 0 still to skip."""
    drop = min(ints[_SKIP], count)
    ints[_SKIP] -= drop
    for i in range(drop, count):
        out[n_out] = ola[i]
        n_out += 1
    return n_out


@numba.njit(cache=True, nogil=True)
def _set_pending(pend, buf, f0, hh, hn, lh, ln, hv, log, j, n_fft, wt):  # pragma: no cover
    buf[_PEND_F0] = f0[j]
    if log:
        if hv[j]:
            pend[0, :] = _response(lh[j], n_fft, wt)
        else:
            pend[0, :] = 0.0
        pend[1, :] = _response(ln[j], n_fft, wt)
    else:
        pend[0, :] = hh[j]
        pend[1, :] = hn[j]


@numba.njit(cache=True, nogil=True)
def _from_step(buf, ints, pend, f0, lh, ln, hv, s, warm, out, win, hop, n_fft, limit, sr,
               wt):  # pragma: no cover  # fmt: skip
    """Frames ``s + warm ..`` of an offline input into ``out``, through its end: a fresh
    state (``buf``, ``ints``, ``pend``) brought to the moment before :func:`_voice`'s step
    ``s`` (the phase by :func:`_advance`, the half segment before it by :func:`_source`),
    then ``warm`` steps run unheard: they add in the overlap-add what the earlier frames had,
    so the samples after them are the single run's to the bit. ``s >= 1``."""
    half_h = buf[_SCALARS : _SCALARS + hop]
    half_n = buf[_SCALARS + hop : _SCALARS + 2 * hop]
    c0 = np.uint64(ints[_COUNTER])
    first = f0[0] if f0[0] > 0 else UNVOICED_F0
    buf[_F0] = first
    buf[_LAST] = first
    phase = _advance(first, first, hop, 0.0, sr)
    for j in range(s):
        nxt = f0[j + 1]
        if nxt > 0:
            buf[_LAST] = nxt
        fb = nxt if nxt > 0 else buf[_LAST]
        if j < s - 1:
            phase = _advance(buf[_F0], fb, hop, phase, sr)
        else:
            counter = c0 + np.uint64((j + 1) * hop)
            phase = _source(buf[_F0], fb, hop, phase, limit, sr, counter, half_h, half_n)
        buf[_F0] = fb
    buf[_PHASE] = phase
    ints[_STARTED] = 1
    ints[_COUNTER] = c0 + np.uint64((s + 1) * hop)
    ints[_SKIP] = warm * hop
    _set_pending(pend, buf, f0, pend, pend, lh, ln, hv, True, s, n_fft, wt)
    return _voice(buf, ints, pend, f0[s + 1 :], pend, pend, lh[s + 1 :], ln[s + 1 :],
                  hv[s + 1 :], True, True, out, win, hop, n_fft, limit, sr, wt)  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _voices(buf, ints, pend, f0, hh, hn, lh, ln, hv, log, flush, out, counts, win, hop,
            n_fft, limit, sr, wt):  # pragma: no cover  # fmt: skip
    """:func:`_voice` for each stream (row) of the stacked states and inputs."""
    for v in range(buf.shape[0]):
        if log:
            counts[v] = _voice(buf[v], ints[v], pend[v], f0[v], hh[0], hn[0], lh[v], ln[v],
                               hv[v], True, flush, out[v], win, hop, n_fft, limit, sr,
                               wt)  # fmt: skip
        else:
            counts[v] = _voice(buf[v], ints[v], pend[v], f0[v], hh[v], hn[v], lh[0], ln[0],
                               hv[0], False, flush, out[v], win, hop, n_fft, limit, sr,
                               wt)  # fmt: skip


class SourceState:
    """Where a stream stands, in three arrays (so that many streams stack for one kernel
    call): ``buf`` float64: the phase, the oscillator's f0 at the centre of the last frame
    received, the last voiced f0, the last frame's f0, then the source of the half segment
    before it and the overlap-add tail; ``ints``: started (frame 0 arrived: its f0 set the
    oscillator), the noise counter, output samples still to drop (those before sample 0);
    ``pend``: the last frame's harmonic and noise responses, processed when the next
    frame's f0 comes. The arrays are updated in place."""

    __slots__ = ("buf", "ints", "pend")

    def __init__(self, buf: np.ndarray, ints: np.ndarray, pend: np.ndarray):
        self.buf, self.ints, self.pend = buf, ints, pend

    @property
    def started(self) -> bool:
        return bool(self.ints[_STARTED])

    @property
    def phase(self) -> float:
        return float(self.buf[_PHASE])


class SourceFilter:
    """Frames of (f0, harmonic response, noise response) -> audio, offline or streaming.

    ``f0``: ``(T,)`` Hz, 0 where unvoiced. ``harmonic``, ``noise``: ``(T, n_fft // 2 + 1)``
    complex frequency responses (causal); or, by :meth:`stream_log` / :meth:`stream_many`,
    natural-log magnitudes made minimum phase (``taps`` 0) or linear phase over ``taps``
    samples here, the harmonic one silenced where a flag says. ``seed`` picks the noise."""

    def __init__(self, conv: Convention = DEFAULT, nyquist_ratio: float = 0.98, seed: int = 0,
                 taps: int = 0):  # fmt: skip
        if conv.win_length != conv.n_fft or conv.n_fft < 2 * conv.hop_length:
            raise ValueError("the harmonic source needs win_length == n_fft >= 2 * hop_length")
        if taps < 0 or taps % 2 or taps > conv.n_fft - 2 * conv.hop_length:
            raise ValueError(
                f"taps must be 0 (minimum phase) or even and <= n_fft - 2 * hop "
                f"({conv.n_fft - 2 * conv.hop_length}); got {taps}"
            )
        self.conv, self.seed, self.taps = conv, seed, taps
        self.hop, self.n_fft, self.sr = conv.hop_length, conv.n_fft, float(conv.sample_rate)
        self.bins = self.n_fft // 2 + 1
        self.limit = nyquist_ratio * self.sr / 2
        n = 2 * self.hop
        self.win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann
        self.delay = self.hop + self.hop // 2 + taps // 2
        self.wt = taps_window(taps)
        self._buf0 = np.zeros(_SCALARS + 2 * self.hop + self.n_fft)
        self._ints0 = np.array([0, seed << 32, self.hop // 2 + taps // 2], np.int64)
        self._pend0 = np.zeros((2, self.bins), np.complex128)
        self._no_c = np.zeros((1, 1, 1), np.complex128)
        self._no_f = np.zeros((1, 1, 1), np.float32)
        self._no_b = np.zeros((1, 1), np.bool_)

    def initial_state(self) -> SourceState:
        return SourceState(self._buf0.copy(), self._ints0.copy(), self._pend0.copy())

    def check_f0(self, f0) -> np.ndarray:
        f0 = np.asarray(f0, np.float64)
        if f0.ndim != 1:
            raise ValueError(f"f0 must be (frames,) in Hz; got shape {f0.shape}")
        if not np.isfinite(f0).all() or (f0 < 0).any() or (f0 >= self.sr / 2).any():
            raise ValueError(
                f"f0 must be finite, >= 0 (0 = unvoiced) and below Nyquist ({self.sr / 2:.0f}"
                " Hz) in every frame; clean the contour (NaN -> 0) before vocoding"
            )
        return f0

    def _check_shape(self, frames: int, *named):
        for name, h in named:
            if h.shape != (frames, self.bins):
                raise ValueError(
                    f"{name} response must be (frames, {self.bins}) to match f0's {frames} "
                    f"frames; got {h.shape}"
                )

    def check(self, f0: np.ndarray, harmonic: np.ndarray, noise: np.ndarray):
        f0 = self.check_f0(f0)
        self._check_shape(f0.size, ("harmonic", harmonic), ("noise", noise))
        return (
            f0,
            np.ascontiguousarray(harmonic, np.complex128),
            np.ascontiguousarray(noise, np.complex128),
        )

    def _go(self, states, f0, hh, hn, lh, ln, hv, flush: bool, pool=None):
        """The kernel over the stacked ``states`` (new ones where None) -> per-stream outputs
        and the states (views into the stacked arrays); on ``pool``'s threads if given."""
        v = len(states)
        sts = [s if s is not None else self.initial_state() for s in states]
        if v == 1:
            s = sts[0]
            buf, ints, pend = s.buf[None], s.ints[None], s.pend[None]
        else:
            buf = np.stack([s.buf for s in sts])
            ints = np.stack([s.ints for s in sts])
            pend = np.stack([s.pend for s in sts])
        n = f0.shape[1]
        out = np.empty((v, (n + 1) * self.hop + self.hop // 2 + self.taps // 2), np.float32)
        counts = np.zeros(v, np.int64)
        log = lh is not None
        if log:
            hh = hn = self._no_c
        else:
            lh, ln, hv = self._no_f, self._no_f, self._no_b

        def run(a: int, b: int):
            _voices(buf[a:b], ints[a:b], pend[a:b], f0[a:b], hh[a:b] if not log else hh,
                    hn[a:b] if not log else hn, lh[a:b] if log else lh,
                    ln[a:b] if log else ln, hv[a:b] if log else hv, log, flush, out[a:b],
                    counts[a:b], self.win, self.hop, self.n_fft, self.limit, self.sr,
                    self.wt)  # fmt: skip

        workers = getattr(pool, "_max_workers", 2) if pool is not None and v > 1 else 1
        if workers > 1:
            edges = np.linspace(0, v, min(workers, v) + 1).astype(int)
            futs = [pool.submit(run, a, b) for a, b in itertools.pairwise(edges[1:])]
            run(0, edges[1])
            for f in futs:
                f.result()
        else:
            run(0, v)
        if v > 1:
            sts = [SourceState(buf[i], ints[i], pend[i]) for i in range(v)]
        return [out[i, : counts[i]] for i in range(v)], sts

    def stream(self, f0, harmonic, noise, state: SourceState | None = None):
        """A chunk of frames -> ``(samples now final, state)``."""
        f0, hh, hn = self.check(f0, harmonic, noise)
        ys, sts = self._go([state], f0[None], hh[None], hn[None], None, None, None, False)
        return ys[0], sts[0]

    def stream_log(self, f0, log_h, log_n, voiced, state: SourceState | None = None,
                   flush: bool = False):  # fmt: skip
        """:meth:`stream` with the responses as natural-log magnitudes ``(frames, bins)``
        (float32), made responses here (``taps``); the harmonic one is zero where ``voiced`` is
        false. ``flush``: the stream's end too (the chunk's samples then :meth:`flush`'s)."""
        ys, sts = self.stream_many([f0], log_h[None], log_n[None], voiced[None], [state], flush)
        return ys[0], sts[0]

    def stream_many(self, f0s, log_h, log_n, voiced, states: list, flush: bool = False,
                    pool=None):  # fmt: skip
        """:meth:`stream_log` for several streams' chunks of one length in one kernel call
        (split over ``pool``'s threads: the kernel releases the GIL): ``f0s`` a list of
        ``(frames,)``, ``log_h``, ``log_n`` ``(streams, frames, bins)``, ``voiced``
        ``(streams, frames)``."""
        f0 = np.stack([self.check_f0(f) for f in f0s])
        shape = (f0.shape[0], f0.shape[1], self.bins)
        if log_h.shape != shape or log_n.shape != shape or voiced.shape != shape[:2]:
            raise ValueError(
                f"log responses must be {shape} and the flags {shape[:2]}; got "
                f"{log_h.shape}, {log_n.shape}, {voiced.shape}"
            )
        lh = np.ascontiguousarray(log_h, np.float32)
        ln = np.ascontiguousarray(log_n, np.float32)
        hv = np.ascontiguousarray(voiced, np.bool_)
        return self._go(states, f0, None, None, lh, ln, hv, flush, pool)

    def offline_log(self, f0, log_h, log_n, voiced, threads: int = 2) -> np.ndarray:
        """Offline :meth:`stream_log` (the streamed samples exactly). On two threads from 64
        frames: the first half as a stream runs it; the second from a state brought to its
        start (:func:`_from_step`: the oscillator's phase fast-forwarded, then as many unheard
        frames as a segment overlaps), so the halves join to the bit."""
        f0 = self.check_f0(f0)
        n = f0.size
        lh, ln, hv = self._log_inputs(n, log_h, log_n, voiced)
        if threads < 2 or n < 64:
            ys, _ = self._go([None], f0[None], None, None, lh[None], ln[None], hv[None], True)
            return ys[0]
        warm = -(-self.n_fft // self.hop) - 1
        mid = n // 2
        tail = self.hop // 2 + self.taps // 2
        out_b = np.empty((n - mid + warm + 1) * self.hop + tail, np.float32)
        b = self.initial_state()
        fut = helper().submit(
            _from_step, b.buf, b.ints, b.pend, f0, lh, ln, hv, mid - warm, warm, out_b,
            self.win, self.hop, self.n_fft, self.limit, self.sr, self.wt,
        )  # fmt: skip
        a = self.initial_state()
        out_a = np.empty((mid + 2) * self.hop, np.float32)
        k = _voice(a.buf, a.ints, a.pend, f0[: mid + 1], self._no_c[0], self._no_c[0],
                   lh[: mid + 1], ln[: mid + 1], hv[: mid + 1], True, False, out_a, self.win,
                   self.hop, self.n_fft, self.limit, self.sr, self.wt)  # fmt: skip
        return np.concatenate([out_a[:k], out_b[: fut.result()]])

    def _log_inputs(self, frames: int, log_h, log_n, voiced):
        """One stream's log responses ``(frames, bins)`` and voicing, checked and laid out
        for the kernels."""
        self._check_shape(frames, ("harmonic", log_h), ("noise", log_n))
        return (np.ascontiguousarray(log_h, np.float32), np.ascontiguousarray(log_n, np.float32),
                np.ascontiguousarray(voiced, np.bool_).reshape(frames))  # fmt: skip

    def responses(self, log_h, log_n, voiced, threads: int = 2):
        """The complex responses ``(frames, bins)`` of natural-log magnitudes ``(frames,
        bins)`` as the synthesis makes them (``taps``), the harmonic one zero where
        ``voiced`` is false; on ``threads`` threads."""
        n = len(voiced)
        lh, ln, hv = self._log_inputs(n, log_h, log_n, voiced)
        hh = np.empty((n, self.bins), np.complex128)
        hn = np.empty_like(hh)
        if threads > 1 and n >= 64:
            mid = n // 2
            args = (hh, hn, self.n_fft, self.wt)
            fut = helper().submit(_responses, lh, ln, hv, mid, n, *args)
            _responses(lh, ln, hv, 0, mid, *args)
            fut.result()
        else:
            _responses(lh, ln, hv, 0, n, hh, hn, self.n_fft, self.wt)
        return hh, hn

    def flush(self, state: SourceState | None) -> np.ndarray:
        """The last ``delay`` samples: the last frame processed (its successor's f0 taken as
        its own) and the tail up to its end."""
        if state is None or not state.started:
            return np.zeros(0, np.float32)
        z = np.zeros((1, 0, self.bins), np.complex128)
        ys, _ = self._go([state], np.zeros((1, 0)), z, z, None, None, None, True)
        return ys[0]

    def __call__(self, f0, harmonic, noise) -> np.ndarray:
        """Offline: ``(T * hop,)`` float32 audio, the streamed samples exactly."""
        f0, hh, hn = self.check(f0, harmonic, noise)
        ys, _ = self._go([None], f0[None], hh[None], hn[None], None, None, None, True)
        return ys[0]

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
