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


def _vowel(f0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A vowel-like harmonic signal on the f0 contour (1/k amplitudes) with a little noise."""
    ph = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * ph) / k for k in range(1, 12))
    return 0.2 * y / np.abs(y).max() + 0.003 * rng.standard_normal(f0.size)


def test_vibrato_tone_follows_the_frame_centre():
    t = np.arange(3 * SR) / SR
    f_true = 220 * 2 ** (50 / 1200 * np.sin(2 * np.pi * 5.5 * t))
    ph = 2 * np.pi * np.cumsum(f_true) / SR
    y = (0.4 * np.sin(ph) + 0.1 * np.sin(2 * ph)).astype(np.float32)
    f0, voiced = dsp.yin(y)
    inner = slice(4, -4)
    assert voiced[inner].all()
    centre = np.arange(f0.size) * 256 + 128
    cents = 1200 * np.abs(np.log2(f0[inner] / f_true[centre[inner]]))
    assert np.median(cents) <= 2 and cents.max() < 5


def test_vowel_fricative_vowel_voicing():
    """Harmonic parts voiced (also the weakly periodic ones), white-noise burst unvoiced."""
    rng = np.random.default_rng(1)
    n = int(0.5 * SR)
    glide = np.linspace(180, 240, n)
    a = _vowel(glide, rng)
    noise = 0.1 * rng.standard_normal(int(0.25 * SR))
    # then a falling vowel that turns breathy: weaker harmonics under much noise (dips
    # ~0.37, over the strict threshold), phase-continuous
    m = int(0.25 * SR)
    bb = _vowel(np.concatenate([glide[::-1] * 0.9, np.full(m, 162.0)]), rng)
    bb[n:] = 0.5 * bb[n:] + 0.04 * rng.standard_normal(m)
    b, breathy = bb[:n], bb[n:]
    y = np.concatenate([a, noise, b, breathy, np.zeros(SR // 4)]).astype(np.float32)
    f0, voiced = dsp.yin(y)
    frames = np.arange(f0.size) * 256 + 128  # frame centres

    def part(lo, hi):  # frames well inside [lo, hi) samples
        return (frames >= lo + 1024) & (frames < hi - 1024)

    edges = np.cumsum([0, a.size, noise.size, b.size, breathy.size, SR // 4])
    assert voiced[part(edges[0], edges[1])].mean() > 0.97
    assert not voiced[part(edges[1], edges[2])].any()
    assert voiced[part(edges[2], edges[3])].mean() > 0.97
    assert voiced[part(edges[3], edges[4])].mean() > 0.9
    assert not voiced[part(edges[4], edges[5])].any()
    # f0 where voiced follows the glide (no octave errors)
    sel = part(edges[0], edges[1]) & voiced
    cents = 1200 * np.abs(np.log2(f0[sel] / np.interp(frames[sel], np.arange(n), glide)))
    assert np.percentile(cents, 95) < 10
    assert (f0[~voiced] == 0).all()


def test_loose_voicing_is_hysteresis_not_a_lower_threshold():
    """Weakly periodic frames alone stay unvoiced; next to clear voicing they are voiced."""
    rng = np.random.default_rng(2)
    m = int(0.5 * SR)
    weak = _vowel(np.full(m, 200.0), rng) * 0.5 + 0.04 * rng.standard_normal(m)
    strong = _vowel(np.full(m, 200.0), rng)
    _, v_weak = dsp.yin(weak.astype(np.float32))  # dips ~0.37: over the strict threshold
    _, v_both = dsp.yin(np.concatenate([strong, weak]).astype(np.float32))
    _, v_strict = dsp.yin(np.concatenate([strong, weak]).astype(np.float32), loose_threshold=0.15)
    assert not v_weak.any()
    assert v_both[4:-4].mean() > 0.97
    assert v_strict[v_strict.size // 2 + 4 : -4].mean() < 0.1


def test_a_single_periodic_blip_is_not_voiced():
    rng = np.random.default_rng(3)
    y = 0.1 * rng.standard_normal(SR)
    y[SR // 2 : SR // 2 + 300] += 0.5 * np.sin(2 * np.pi * 200 * np.arange(300) / SR)
    _, voiced = dsp.yin(y.astype(np.float32))
    assert not voiced.any()


def test_vocoder_inputs_are_the_log_mel_and_the_voiced_f0_frame_for_frame():
    """A tone, then silence: the mel and f0 align frame for frame, f0 is the tone's where
    it sounds and 0 (not NaN) in the silence; without f0, none is analysed."""
    t = np.arange(SR // 2) / SR
    y = np.concatenate([0.4 * np.sin(2 * np.pi * 196.0 * t), np.zeros(SR // 2)]).astype(np.float32)
    mel, f0 = dsp.vocoder_inputs(y)
    assert np.array_equal(mel, dsp.log_mel(y)[:, : len(f0)]) and f0.dtype == np.float32
    half = len(f0) // 2
    assert np.median(f0[4 : half - 4]) == pytest.approx(196.0, rel=0.005)
    assert (f0[half + 4 :] == 0).all() and np.isfinite(f0).all()
    assert dsp.vocoder_inputs(y, f0=False)[1] is None
