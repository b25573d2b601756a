"""melgand's signal processing: numba kernels, no torch, imports nothing from melgand.

Batch: :func:`stft`, :func:`istft`, :func:`log_mel`, :func:`mel_basis`, :func:`mfcc`,
:func:`mel_to_magnitude`, :func:`refine_to_mel`, :func:`griffin_lim`, :func:`yin`,
:func:`log_energy`, :func:`vocoder_inputs`.
Streaming (explicit state,
``out, state = obj.stream(x, state)``): :class:`Analyzer`, :class:`Synthesizer`,
:class:`Rtisi`. Conventions: :class:`Convention` (``DEFAULT`` is HiFi-GAN's).
"""

from dsp import _extensions  # noqa: F401  (first: numba's extensions, see its docstring)
from dsp.alignment import monotonic_alignment
from dsp.convention import DEFAULT, Convention, librosa_center
from dsp.mel import (
    envelope,
    hz_to_mel,
    log_mel,
    mel_basis,
    mel_to_hz,
    mel_to_magnitude,
    mfcc,
    refine_to_mel,
    repitch,
)
from dsp.phase import Rtisi, griffin_lim
from dsp.pitch import log_energy, yin
from dsp.spectral import istft, stft, window
from dsp.stream import Analyzer, Synthesizer
from dsp.vocoder import DspVocoder, vocoder_inputs

__all__ = [
    "DEFAULT",
    "Analyzer",
    "Convention",
    "DspVocoder",
    "Rtisi",
    "Synthesizer",
    "envelope",
    "griffin_lim",
    "hz_to_mel",
    "istft",
    "librosa_center",
    "log_energy",
    "log_mel",
    "mel_basis",
    "mel_to_hz",
    "mel_to_magnitude",
    "mfcc",
    "monotonic_alignment",
    "refine_to_mel",
    "repitch",
    "stft",
    "vocoder_inputs",
    "window",
    "yin",
]
