"""YIN f0 and frame energy on the log-mel's frames."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

import dsp

SR = 22050


@pytest.mark.parametrize("f", [65.0, 98.0, 220.0, 440.0, 523.25, 880.0])
def test_yin_finds_the_pitch_of_a_tone(f):
    t = np.arange(SR) / SR
    y = (0.4 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(4 * np.pi * f * t)).astype(np.float32)
    f0, voiced = dsp.yin(y)
    assert f0.shape == voiced.shape == (dsp.log_mel(y).shape[1],)
    inner = slice(4, -4)
    assert voiced[inner].all()
    cents = 1200 * np.abs(np.log2(f0[inner] / f))
    assert np.median(cents) < 2 and cents.max() < 10


def test_yin_agrees_with_librosa_on_a_glide():
    t = np.arange(2 * SR) / SR
    y = (0.5 * np.sin(2 * np.pi * (100 * t + 100 * t * t))).astype(np.float32)  # 100 -> 500 Hz
    f0, voiced = dsp.yin(y)
    ref = librosa.yin(
        np.pad(y, 384, mode="reflect"),
        fmin=60,
        fmax=1000,
        sr=SR,
        frame_length=1024,
        hop_length=256,
        center=False,
    )
    both = voiced.copy()
    both[:4] = both[-4:] = False
    rel = np.abs(f0[both] - ref[both]) / ref[both]
    assert np.median(rel) < 0.01


def test_silence_and_noise_are_unvoiced():
    rng = np.random.default_rng(0)
    for y in (np.zeros(SR, np.float32), (0.3 * rng.standard_normal(SR)).astype(np.float32)):
        _, voiced = dsp.yin(y)
        assert voiced.mean() < 0.05


def test_yin_refuses_a_range_the_frame_cannot_hold():
    with pytest.raises(ValueError, match="fmin"):
        dsp.yin(np.zeros(4096, np.float32), fmin=20.0)


def test_log_energy_of_a_sine():
    y = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)).astype(np.float32)
    e = dsp.log_energy(y)
    assert e.shape == (SR // 256,)
    np.testing.assert_allclose(e[4:-4], np.log(0.5 / np.sqrt(2)), atol=0.01)
