"""Streaming equals batch: the analyser, the overlap-add synthesiser and RTISI-LA, over
block sizes from one sample (or frame) to several frames, as hypothesis property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dsp
from tests.conftest import SMALL, signal

CONVS = {
    "default": dsp.DEFAULT,
    "center": dsp.librosa_center(),
    "small": dsp.Convention(**SMALL),
}


def feed(obj, x: np.ndarray, blocks: list[int], axis: int):
    """Run ``x`` through ``obj.stream`` in blocks cycling through ``blocks``; then flush."""
    outs, state, i, k = [], None, 0, 0
    n = x.shape[axis]
    while i < n:
        b = blocks[k % len(blocks)]
        part = x[i : i + b] if axis == 0 else x[:, i : i + b]
        out, state = obj.stream(part, state)
        outs.append(out)
        i, k = i + b, k + 1
    outs.append(obj.flush(state))
    return np.concatenate(outs, axis=-1), outs


@given(
    n=st.integers(0, 4000),
    blocks=st.lists(st.integers(1, 1100), min_size=1, max_size=5),
    feature=st.sampled_from(["stft", "log_mel"]),
    conv=st.sampled_from(sorted(CONVS)),
    dtype=st.sampled_from([np.float32, np.float64]),
    kind=st.sampled_from(["random", "tonal", "fullscale"]),
)
def test_analyzer_equals_batch(n, blocks, feature, conv, dtype, kind):
    c = CONVS[conv]
    y = signal(kind, n, dtype, seed=n)
    got, _ = feed(dsp.Analyzer(c, feature, dtype), y, blocks, axis=0)
    if n == 0:
        assert got.shape[1] == 0
        return
    ref = dsp.stft(y, c) if feature == "stft" else dsp.log_mel(y, c)
    assert got.shape == ref.shape
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * max(np.abs(ref).max(initial=0), 1.0))


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 65, 128, 255, 256, 257, 1000, 1024, 3000])
def test_analyzer_every_block_size_gives_batch_frames(block):
    y = signal("tonal", 6000, np.float32)
    got, outs = feed(dsp.Analyzer(), y, [block], axis=0)
    np.testing.assert_allclose(got, dsp.log_mel(y), rtol=0, atol=1e-5)
    # frames come out as soon as their samples are in: never more than delay samples late
    seen = 0
    for i, out in enumerate(outs[:-1]):
        seen += out.shape[1]
        fed = min((i + 1) * block, y.size)
        assert seen == max(0, (fed - dsp.Analyzer().delay) // 256) or fed < 640


def test_analyzer_state_is_explicit():
    """The same state fed twice gives the same frames: no hidden mutable state."""
    a = dsp.Analyzer()
    y = signal("random", 3000, np.float32)
    _, s = a.stream(y[:1500])
    f1, _ = a.stream(y[1500:], s)
    f2, _ = a.stream(y[1500:], s)
    np.testing.assert_array_equal(f1, f2)
    fresh, _ = a.stream(y[:1000], a.initial_state())
    again, _ = a.stream(y[:1000], None)
    np.testing.assert_array_equal(fresh, again)


@given(
    frames=st.integers(0, 40),
    blocks=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    conv=st.sampled_from(sorted(CONVS)),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_synthesizer_equals_istft(frames, blocks, conv, dtype):
    c = CONVS[conv]
    rng = np.random.default_rng(frames)
    S = rng.standard_normal((c.n_bins, frames)) + 1j * rng.standard_normal((c.n_bins, frames))
    S = S.astype(np.complex64 if dtype == np.float32 else np.complex128)
    syn = dsp.Synthesizer(c, dtype)
    got, outs = feed(syn, S, blocks, axis=1)
    ref = dsp.istft(S, c)
    assert got.shape == ref.shape
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol * max(np.abs(ref).max(initial=0), 1))
    if frames:  # after n frames, n * hop - delay samples are out
        assert sum(o.size for o in outs[:-1]) == max(frames * c.hop_length - syn.delay, 0)


def test_analysis_synthesis_round_trip_streams():
    y = signal("random", 9000, np.float64)
    frames, _ = feed(dsp.Analyzer(feature="stft", dtype=np.float64), y, [333], axis=0)
    back, _ = feed(dsp.Synthesizer(dtype=np.float64), frames, [5], axis=1)
    inner = slice(1024, back.size - 1024)
    np.testing.assert_allclose(back[inner], y[inner], atol=1e-9)


@given(
    blocks=st.lists(st.integers(1, 20), min_size=1, max_size=4),
    lookahead=st.integers(0, 3),
    iters=st.integers(0, 3),
    frames=st.integers(0, 30),
)
def test_rtisi_streaming_equals_offline(blocks, lookahead, iters, frames):
    r = dsp.Rtisi(lookahead=lookahead, iters=iters)
    mag = np.abs(dsp.stft(signal("tonal", frames * 256 + 1, np.float64)))
    got, outs = feed(r, mag, blocks, axis=1)
    ref = r.offline(mag)
    assert got.shape == ref.shape == (frames * 256,)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert sum(o.size for o in outs[:-1]) == max(frames * 256 - r.delay, 0)


def test_dsp_vocoder_streams_like_offline():
    y = signal("tonal", 12000, np.float32)
    mel = dsp.log_mel(y)
    v = dsp.DspVocoder()
    got, _ = feed(v, mel, [1, 3, 8], axis=1)
    np.testing.assert_allclose(got, v(mel), rtol=0, atol=1e-5)
    assert got.size == mel.shape[1] * 256
