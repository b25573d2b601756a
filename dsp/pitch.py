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
def _yin_kernel(
    yp, hop, n_fft, n_frames, tau_min, tau_max, threshold, sr, silence
):  # pragma: no cover
    f0 = np.zeros(n_frames, dtype=np.float32)
    voiced = np.zeros(n_frames, dtype=np.bool_)
    w = n_fft - tau_max
    d = np.zeros(tau_max + 2)
    cmnd = np.ones(tau_max + 2)
    for t in range(n_frames):
        x = yp[t * hop : t * hop + n_fft]
        energy = 0.0
        for j in range(w):
            energy += x[j] * x[j]
        if energy / w < silence:
            continue
        for tau in range(1, tau_max + 2):
            acc = 0.0
            xs = x[tau : tau + w]
            for j in range(w):
                diff = x[j] - xs[j]
                acc += diff * diff
            d[tau] = acc
        running = 0.0
        for tau in range(1, tau_max + 2):
            running += d[tau]
            cmnd[tau] = d[tau] * tau / running if running > 0 else 1.0
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
            continue
        a, b, c = cmnd[best - 1], cmnd[best], cmnd[best + 1]
        den = a - 2 * b + c
        shift = 0.5 * (a - c) / den if den > 0 else 0.0
        f0[t] = sr / (best + max(-0.5, min(0.5, shift)))
        voiced[t] = True
    return f0, voiced


def yin(
    y: np.ndarray,
    conv: Convention = DEFAULT,
    fmin: float = 60.0,
    fmax: float = 1000.0,
    threshold: float = 0.15,
    silence_db: float = -60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, voiced)`` per frame: f0 in Hz (float32, 0 where unvoiced) and a bool mask.

    ``fmin``..``fmax`` is the search range (the lag must fit in the frame: ``fmin`` above
    ``2 * sample_rate / n_fft``); frames quieter than ``silence_db`` (mean square, dBFS) are
    unvoiced without searching.
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
    return _yin_kernel(
        yp,
        conv.hop_length,
        n_fft,
        n_frames,
        tau_min,
        tau_max,
        threshold,
        float(sr),
        10.0 ** (silence_db / 10.0),
    )


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
