"""dsp against librosa, the reference, with the tolerances the foundation issue names."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

import dsp
from tests.conftest import SMALL, signal

KINDS = ("random", "tonal", "silence", "fullscale")
LENGTHS = (1, 2, 100, 255, 256, 257, 383, 384, 385, 639, 640, 1023, 1024, 1025, 4097, 22067)
STFT_TOL = {np.float64: 1e-5, np.float32: 1e-4}  # relative to the largest magnitude


def librosa_stft(y: np.ndarray, conv: dsp.Convention) -> np.ndarray:
    """The reference: librosa.stft with center=False on the convention's padded signal."""
    return librosa.stft(
        np.pad(y, conv.pad, mode=conv.pad_mode),
        n_fft=conv.n_fft,
        hop_length=conv.hop_length,
        win_length=conv.win_length,
        window="hann",
        center=False,
    )


def assert_rel(got: np.ndarray, ref: np.ndarray, tol: float) -> None:
    assert got.shape == ref.shape
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", LENGTHS)
def test_stft_matches_librosa(n, kind, dtype):
    y = signal(kind, n, dtype)
    got = dsp.stft(y)
    assert got.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    assert got.shape == (513, n // 256)
    if n + 768 < 1024:  # too short for one frame: librosa refuses, we give zero frames
        return
    assert_rel(got, librosa_stft(y, dsp.DEFAULT), STFT_TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", (1024, 1025, 5000, 22067))
def test_stft_center_true_matches_librosa(n, dtype):
    y = signal("tonal", n, dtype)
    conv = dsp.librosa_center()
    ref = librosa.stft(y, n_fft=1024, hop_length=256)  # librosa >= 0.10 pads with zeros
    assert_rel(dsp.stft(y, conv), ref, STFT_TOL[dtype])


@pytest.mark.parametrize(
    "conv",
    [
        dsp.DEFAULT,
        dsp.Convention(sample_rate=24000, n_fft=2048, fmax=12000.0, n_mels=128),
        dsp.Convention(**{**SMALL, "fmin": 55.0}),
    ],
)
def test_mel_basis_matches_librosa(conv):
    ref = librosa.filters.mel(
        sr=conv.sample_rate, n_fft=conv.n_fft, n_mels=conv.n_mels, fmin=conv.fmin, fmax=conv.fmax
    )
    got = dsp.mel_basis(conv)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_mel_scale_matches_librosa():
    f = np.linspace(0, 11025, 997)
    np.testing.assert_allclose(dsp.hz_to_mel(f), librosa.hz_to_mel(f), rtol=1e-12)
    m = np.linspace(0, 60, 101)
    np.testing.assert_allclose(dsp.mel_to_hz(m), librosa.mel_to_hz(m), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", (256, 300, 1023, 1025, 4097, 22067))
def test_log_mel_matches_librosa_pipeline(n, kind, dtype):
    y = signal(kind, n, dtype, seed=n)
    S = np.abs(librosa_stft(y, dsp.DEFAULT))
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    ref = np.log(np.maximum(basis @ S, 1e-5))
    got = dsp.log_mel(y)
    assert got.dtype == np.float32 and got.shape == (80, n // 256)
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-3)


def test_log_mel_short_input_gives_no_frames():
    assert dsp.log_mel(np.zeros(255, np.float32)).shape == (80, 0)
    assert dsp.log_mel(np.zeros(256, np.float32)).shape == (80, 1)


@pytest.mark.parametrize("kind", ("random", "tonal", "fullscale"))
@pytest.mark.parametrize("n", (2048, 5000, 22067))
def test_istft_inverts_stft(n, kind):
    y = signal(kind, n, np.float64)
    back = dsp.istft(dsp.stft(y))
    assert back.shape == (n // 256 * 256,)
    inner = slice(1024, back.size - 1024)  # away from the edges
    np.testing.assert_allclose(back[inner], y[inner], rtol=0, atol=1e-6)
    assert np.abs(dsp.istft(dsp.stft(y), length=n)[: back.size] - back).max() == 0


@pytest.mark.parametrize("n", (2048, 5001))
def test_istft_matches_librosa(n):
    y = signal("random", n, np.float64)
    conv = dsp.librosa_center()
    S = dsp.stft(y, conv)
    ref = librosa.istft(S, n_fft=1024, hop_length=256, length=n)
    np.testing.assert_allclose(dsp.istft(S, conv, length=n), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", (1024, 3000, 22067))
def test_mfcc_matches_librosa(n):
    y = signal("tonal", n, np.float32) + signal("random", n, np.float32) * 0.01
    ref = librosa.feature.mfcc(
        y=y, sr=22050, n_mfcc=20, n_fft=1024, hop_length=256, n_mels=80, fmax=8000
    )
    got = dsp.mfcc(y, dsp.librosa_center(), n_mfcc=20)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-3 * np.abs(ref).max())


def test_mel_to_magnitude_reprojects_onto_the_mel():
    y = signal("tonal", 8192, np.float32) + signal("random", 8192, np.float32) * 0.05
    mel = np.exp(dsp.log_mel(y))
    mag = dsp.mel_to_magnitude(mel)
    assert mag.shape == (513, mel.shape[1]) and (mag >= 0).all()
    re = dsp.mel_basis(dsp.DEFAULT, np.float64) @ mag
    assert np.linalg.norm(re - mel) / np.linalg.norm(mel) < 0.05
    # and it is a far better estimate of the true magnitude than a flat spectrum
    true = np.abs(dsp.stft(y))
    flat = np.ones_like(true) * true.mean()
    assert np.linalg.norm(mag - true) < 0.8 * np.linalg.norm(flat - true)
