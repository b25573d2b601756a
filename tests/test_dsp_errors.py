"""Bad input gets a clear ValueError, not a numba crash or silent garbage."""

from __future__ import annotations

import numpy as np
import pytest

import dsp

ENTRY_POINTS = {
    "stft": dsp.stft,
    "log_mel": dsp.log_mel,
    "mfcc": dsp.mfcc,
    "analyzer": lambda y: dsp.Analyzer().stream(y),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([0.1, np.nan, 0.2] * 400, np.float32), "non-finite value .* at sample 1"),
        (np.array([0.0] * 999 + [np.inf], np.float32), "non-finite value .* at sample 999"),
        (np.zeros(2000, np.int16), "int16.*divide by 32768"),
        (np.zeros(2000, np.complex64), "float32 or float64"),
        (np.zeros((2000, 2), np.float32), r"mono.*downmix first, e.g. y.mean\(axis=1\)"),
        (np.zeros((2, 2000), np.float32), r"mono.*y.mean\(axis=0\)"),
        ([0.0] * 2000, "numpy array"),
    ],
)
def test_bad_audio_is_refused_clearly(name, bad, message):
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[name](bad)


@pytest.mark.parametrize("name", ["stft", "log_mel", "mfcc"])
def test_empty_audio_is_refused(name):
    with pytest.raises(ValueError, match="empty"):
        ENTRY_POINTS[name](np.zeros(0, np.float32))


def test_empty_block_is_fine_for_a_stream():
    frames, state = dsp.Analyzer().stream(np.zeros(0, np.float32))
    assert frames.shape == (80, 0) and not state.started


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dsp.istft(np.zeros((512, 4), np.complex64)), r"shape \(513, frames\)"),
        (lambda: dsp.istft(np.zeros((513, 4), np.float32)), "complex spectrogram"),
        (lambda: dsp.istft(np.full((513, 4), np.nan + 0j)), "NaN"),
        (lambda: dsp.griffin_lim(np.zeros((513, 4)), n_iter=-1), "n_iter"),
        (lambda: dsp.Rtisi().stream(np.zeros((80, 4))), r"shape \(513, frames\)"),
        (lambda: dsp.mel_to_magnitude(-np.ones((80, 3))), "non-negative"),
        (lambda: dsp.DspVocoder().stream(np.full((80, 2), np.inf)), "NaN or infinite"),
        (lambda: dsp.DspVocoder(method="wavenet"), r"select one of \('rtisi', 'griffin_lim'\)"),
        (lambda: dsp.DspVocoder(method="griffin_lim").stream(np.zeros((80, 2))), "cannot stream"),
        (lambda: dsp.Analyzer(feature="mfcc"), "feature must be one of"),
        (lambda: dsp.mfcc(np.zeros(4096, np.float32), n_mfcc=0), "n_mfcc"),
        (lambda: dsp.Convention(hop_length=2000), "hop_length must be in 1..win_length"),
        (lambda: dsp.Convention(n_fft=1000), "power of two"),
        (lambda: dsp.Convention(fmax=20000.0), "fmax <= sample_rate/2"),
    ],
)
def test_bad_arguments_are_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_convention_mismatch_names_every_field():
    with pytest.raises(ValueError, match=r"hop_length: checkpoint has 200, expected 256.*n_mels"):
        dsp.DEFAULT.check_same(dsp.Convention(hop_length=200, n_mels=100))
    dsp.DEFAULT.check_same(dsp.Convention.from_dict(dsp.DEFAULT.to_dict()))
    with pytest.raises(ValueError, match="unknown audio convention keys"):
        dsp.Convention.from_dict({"sr": 22050})
