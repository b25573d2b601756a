"""f0 by YIN (de Cheveigné & Kawahara 2002) and frame energy, on the log-mel's frames.

Both use the convention's framing (padding, hop, frame length n_fft), so frame ``t`` of
:func:`yin` and :func:`log_energy` describes the same samples as column ``t`` of
:func:`dsp.log_mel`.
"""

from __future__ import annotations

import numba
import numpy as np

from dsp import checks
from dsp import spectral as _sp
from dsp.convention import DEFAULT, Convention


@numba.njit(cache=True, nogil=True, fastmath=True)
def _best_lag(cmnd, tau_min, tau_max, threshold):  # pragma: no cover
    """The lag of a frame's cumulative mean normalized difference ``cmnd``."""
    # standard YIN: the first dip under the threshold (its local minimum) ...
    best = -1
    tau = tau_min
    while tau <= tau_max:
        if cmnd[tau] < threshold:
            while tau + 1 <= tau_max and cmnd[tau + 1] < cmnd[tau]:
                tau += 1
            best = tau
            break
        tau += 1
    if best < 0:
        # ... else the global minimum, guarded against octave errors: a dip near a
        # sub-multiple of its lag that is nearly as deep wins.
        best = tau_min
        for tau in range(tau_min, tau_max + 1):
            if cmnd[tau] < cmnd[best]:
                best = tau
        k = 2
        while best // k >= tau_min:
            lo = max(tau_min, int(best / k * 0.97))
            hi = min(tau_max, int(best / k * 1.03) + 1)
            sub = lo
            for tau in range(lo, hi + 1):
                if cmnd[tau] < cmnd[sub]:
                    sub = tau
            if (
                cmnd[sub] < cmnd[best] + 0.05
                and cmnd[sub] <= cmnd[sub - 1]
                and cmnd[sub] <= cmnd[sub + 1]
            ):
                best = sub
                break
            k += 1
    return best


@numba.njit(cache=True, nogil=True, fastmath=True)
def _parabolic_shift(x, best, c, w, n_fft):  # pragma: no cover
    """The sub-sample refinement of lag ``best``, within half a sample."""
    # parabolic refinement on the raw difference, all three lags on one window
    s = c - (w + best) // 2
    if s < 1:
        s = 1
    if s + w + best + 1 > n_fft:
        s = n_fft - w - best - 1
    a = 0.0
    b = 0.0
    e = 0.0
    for j in range(w):
        u = x[s + j]
        da = u - x[s + j + best - 1]
        db = u - x[s + j + best]
        de = u - x[s + j + best + 1]
        a += da * da
        b += db * db
        e += de * de
    den = a - 2.0 * b + e
    shift = 0.5 * (a - e) / den if den > 0 else 0.0
    return max(-0.5, min(0.5, shift))


@numba.njit(cache=True, nogil=True, fastmath=True)
def _yin_kernel(
    yp, hop, n_fft, n_frames, tau_min, tau_max, threshold, sr, silence
):  # pragma: no cover
    """Per frame: candidate f0 (Hz), its CMND dip depth and the centred mean square.

    The difference function is taken on windows centred on the frame centre (for each lag
    the pair of segments straddles it), so f0 describes the middle of the frame.
    """
    f0 = np.zeros(n_frames, dtype=np.float32)
    dip = np.ones(n_frames, dtype=np.float32)
    power = np.zeros(n_frames, dtype=np.float64)
    w = n_fft - tau_max - 2
    c = n_fft // 2
    d = np.zeros(tau_max + 2)
    cmnd = np.ones(tau_max + 2)
    for t in range(n_frames):
        x = yp[t * hop : t * hop + n_fft]
        s0 = c - w // 2
        energy = 0.0
        for j in range(w):
            energy += x[s0 + j] * x[s0 + j]
        power[t] = energy / w
        if power[t] < silence:
            continue
        for tau in range(1, tau_max + 2):
            s = c - (w + tau) // 2
            xa = x[s : s + w]
            xb = x[s + tau : s + tau + w]
            acc = 0.0
            for j in range(w):
                diff = xa[j] - xb[j]
                acc += diff * diff
            d[tau] = acc
        running = 0.0
        for tau in range(1, tau_max + 2):
            running += d[tau]
            cmnd[tau] = d[tau] * tau / running if running > 0 else 1.0
        best = _best_lag(cmnd, tau_min, tau_max, threshold)
        dip[t] = cmnd[best]
        f0[t] = sr / (best + _parabolic_shift(x, best, c, w, n_fft))
    return f0, dip, power


@numba.njit(cache=True, nogil=True)
def _voicing(
    f0, dip, power, threshold, loose, silence, quiet, min_run, max_gap, max_jump
):  # pragma: no cover
    """The voiced mask from dip depths: hysteresis, short gaps closed, short runs dropped."""
    n = dip.size
    strong = np.zeros(n, dtype=np.bool_)
    weak = np.zeros(n, dtype=np.bool_)
    for t in range(n):
        strong[t] = power[t] > silence and dip[t] < threshold
        weak[t] = strong[t] or (power[t] > quiet and dip[t] < loose)
    # hysteresis: grow voicing from strong frames into adjacent weak frames whose f0
    # continues the neighbour's (within max_jump octaves), forwards then backwards
    voiced = strong.copy()
    for t in range(1, n):
        if not voiced[t] and weak[t] and voiced[t - 1]:
            voiced[t] = abs(np.log2(f0[t] / f0[t - 1])) < max_jump
    for t in range(n - 2, -1, -1):
        if not voiced[t] and weak[t] and voiced[t + 1]:
            voiced[t] = abs(np.log2(f0[t] / f0[t + 1])) < max_jump
    # close unvoiced gaps of up to max_gap audible frames between voiced frames
    t = 1
    while t < n:
        if voiced[t - 1] and not voiced[t]:
            u = t
            while u < n and not voiced[u] and u - t < max_gap and power[u] > quiet:
                u += 1
            if u < n and voiced[u]:
                voiced[t:u] = True
            t = u + 1
        else:
            t += 1
    # drop voiced runs shorter than min_run
    t = 0
    while t < n:
        if voiced[t]:
            u = t
            while u < n and voiced[u]:
                u += 1
            if u - t < min_run:
                voiced[t:u] = False
            t = u
        else:
            t += 1
    return voiced


def yin(
    y: np.ndarray,
    conv: Convention = DEFAULT,
    fmin: float = 60.0,
    fmax: float = 1000.0,
    threshold: float = 0.15,
    silence_db: float = -60.0,
    *,
    loose_threshold: float = 0.5,
    quiet_db: float = -45.0,
    min_run: int = 3,
    max_gap: int = 2,
    max_jump_cents: float = 200.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, voiced)`` per frame: f0 in Hz (float32, 0 where unvoiced) and a bool mask.

    ``fmin``..``fmax`` is the search range (the lag must fit in the frame: ``fmin`` above
    ``2 * sample_rate / n_fft``). A frame is voiced when its YIN dip (cumulative mean
    normalized difference) is under ``threshold`` and it is louder than ``silence_db``
    (mean square, dBFS), or when the dip is under ``loose_threshold``, it is louder than
    ``quiet_db`` and it touches such a frame through frames of that kind (hysteresis).
    Unvoiced gaps of up to ``max_gap`` non-quiet frames inside voicing are closed and voiced
    runs shorter than ``min_run`` frames dropped; every decision looks only a few frames
    around itself except the hysteresis, which follows one run.
    """
    y = checks.audio(y)
    sr, n_fft = conv.sample_rate, conv.n_fft
    tau_max = int(np.ceil(sr / fmin))
    tau_min = max(2, int(np.floor(sr / fmax)))
    if not 0 < fmin < fmax or tau_max + 2 > n_fft // 2:
        raise ValueError(
            f"need 0 < fmin < fmax and fmin > {2 * sr / n_fft:.0f} Hz for n_fft {n_fft}; "
            f"got fmin={fmin}, fmax={fmax}"
        )
    n_frames = conv.n_frames(y.size)
    if n_frames == 0:
        return np.zeros(0, np.float32), np.zeros(0, bool)
    yp = _sp.pad(y.astype(np.float64), conv)
    silence = 10.0 ** (silence_db / 10.0)
    f0, dip, power = _yin_kernel(
        yp, conv.hop_length, n_fft, n_frames, tau_min, tau_max, threshold, float(sr), silence
    )
    voiced = _voicing(
        f0,
        dip,
        power,
        threshold,
        loose_threshold,
        silence,
        10.0 ** (quiet_db / 10.0),
        min_run,
        max_gap,
        max_jump_cents / 1200.0,
    )
    f0 = np.where(voiced, f0, np.float32(0.0)).astype(np.float32)
    return f0, voiced


def log_energy(y: np.ndarray, conv: Convention = DEFAULT, floor: float = 1e-5) -> np.ndarray:
    """Natural log of each frame's RMS under the analysis window (float32, ``(frames,)``)."""
    y = checks.audio(y)
    n = conv.n_frames(y.size)
    if n == 0:
        return np.zeros(0, np.float32)
    win = _sp.window(conv.n_fft, conv.win_length)
    frames = _sp._frames(_sp.pad(y.astype(np.float64), conv), win, conv.hop_length, n)
    rms = np.sqrt((frames**2).sum(axis=1) / (win**2).sum())
    return np.log(np.maximum(rms, floor)).astype(np.float32)
