"""The DSP vocoder: log-mel -> magnitude (NNLS) -> phase reconstruction -> audio.

No training, no weights: the baseline every neural vocoder must beat, and what the
daemon speaks with until one is packaged. ``method="griffin_lim"`` is batch only;
``method="rtisi"`` streams with ``delay`` samples of latency.
"""

from __future__ import annotations

import numpy as np

from dsp import checks
from dsp import mel as _mel
from dsp import phase as _phase
from dsp import pitch as _pitch
from dsp.convention import DEFAULT, Convention
from dsp.phase import RtisiState

METHODS = ("rtisi", "griffin_lim")


class DspVocoder:
    def __init__(
        self,
        conv: Convention = DEFAULT,
        method: str = "rtisi",
        griffin_lim_iters: int = 32,
        rtisi_lookahead: int = 2,
        rtisi_iters: int = 4,
        nnls_iters: int = 16,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown DSP vocoder method {method!r}; select one of {METHODS}")
        self.conv = conv
        self.method = method
        self.griffin_lim_iters = griffin_lim_iters
        self.nnls_iters = nnls_iters
        self.rtisi = _phase.Rtisi(conv, rtisi_lookahead, rtisi_iters)
        self.delay = self.rtisi.delay if method == "rtisi" else 0

    def _mag(self, log_mel: np.ndarray) -> np.ndarray:
        log_mel = checks.spectrum(log_mel, self.conv.n_mels, "log_mel", complex_ok=False)
        return _mel.mel_to_magnitude(np.exp(log_mel), self.conv, self.nnls_iters)

    needs_f0 = False  # the phase is reconstructed; an f0 given is not used

    def __call__(self, log_mel: np.ndarray, f0: np.ndarray | None = None) -> np.ndarray:
        """``(n_mels, frames)`` log-mel -> float32 audio of ``frames * hop`` samples."""
        mag = self._mag(log_mel)
        if self.method == "griffin_lim":
            return _phase.griffin_lim(mag, self.conv, self.griffin_lim_iters)
        return self.rtisi.offline(mag)

    def stream(
        self, log_mel: np.ndarray, state: RtisiState | None = None, f0: np.ndarray | None = None
    ) -> tuple[np.ndarray, RtisiState]:
        """A log-mel chunk ``(n_mels, k)`` -> the samples now final (RTISI-LA only)."""
        if self.method != "rtisi":
            raise ValueError("griffin_lim cannot stream; use method='rtisi' for live audio")
        return self.rtisi.stream(self._mag(log_mel), state)

    def flush(self, state: RtisiState | None) -> np.ndarray:
        return self.rtisi.flush(state)


def vocoder_inputs(
    y: np.ndarray, conv: Convention = DEFAULT, f0: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """What a vocoder is given to copy audio ``y`` (copy synthesis, `melgand vocode`): its
    log-mel ``(n_mels, T)`` and, with ``f0``, YIN's f0 in Hz (0 where unvoiced, float32),
    frame for frame; without, None."""
    mel = _mel.log_mel(y, conv)
    if not f0:
        return mel, None
    hz, _ = _pitch.yin(y, conv)
    n = min(mel.shape[1], len(hz))
    return mel[:, :n], hz[:n].astype(np.float32)
