"""The harmonic vocoder: the source and its filters in dsp, the network in model, one
registry for every vocoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dsp
from dsp.harmonic import SourceFilter
from model import registry
from model.harmonic import HarmonicNet, linear_phase, mel_prior, minimum_phase, synthesize
from model.harmonic_vocoder import HarmonicVocoder

CONV = dsp.DEFAULT
BINS = CONV.n_bins


def _vowel(f0: np.ndarray, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal: harmonics of ``f0`` (Hz, per sample) under two formants."""
    sr = CONV.sample_rate
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(phase)
    for k in range(1, 40):
        f = k * f0
        amp = np.exp(-(((f - 700) / 250) ** 2)) + 0.5 * np.exp(-(((f - 1800) / 300) ** 2)) + 0.02
        y += np.where(f < sr / 2, amp * np.cos(k * phase), 0.0)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


TAPS = [0, 256]  # minimum phase, linear phase


def _net(seed: int = 0, channels: int = 32, taps: int = 0) -> HarmonicNet:
    torch.manual_seed(seed)
    net = HarmonicNet(channels=channels, blocks=2, phase_taps=taps).eval()
    with torch.no_grad():
        for p in net.head.parameters():
            p.normal_(0, 0.05)
    return net.remove_weight_norm()


def _vocoder(seed: int = 0, channels: int = 32, taps: int = 0) -> HarmonicVocoder:
    return HarmonicVocoder(_net(seed, channels, taps), CONV, {})


def _stream(voc, mel, f0, chunk: int) -> np.ndarray:
    outs, st = [], None
    for i in range(0, mel.shape[1], chunk):
        y, st = voc.stream(mel[:, i : i + chunk], st, f0=f0[i : i + chunk])
        outs.append(y)
    outs.append(voc.flush(st))
    return np.concatenate(outs)


@pytest.fixture(scope="module")
def speechlike():
    t = np.arange(int(1.2 * CONV.sample_rate)) / CONV.sample_rate
    f0 = 180 + 40 * np.sin(2 * np.pi * 1.5 * t)
    y = _vowel(f0)
    y[8000:11000] = np.random.default_rng(1).normal(0, 0.05, 3000)  # a fricative
    mel = dsp.log_mel(y, CONV)
    hz, voiced = dsp.yin(y, CONV)
    return mel, (hz * voiced)[: mel.shape[1]].astype(np.float64)


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 32])
def test_stream_equals_offline_exactly_for_every_chunk_size(speechlike, chunk, taps):
    mel, f0 = speechlike
    voc = _vocoder(taps=taps)
    ref = voc(mel, f0=f0)
    assert ref.shape == (mel.shape[1] * CONV.hop_length,)
    assert np.abs(ref).max() > 1e-3
    np.testing.assert_array_equal(_stream(voc, mel, f0, chunk), ref)


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("frames", [64, 65, 97, 200])
def test_the_offline_synthesis_on_two_threads_is_the_single_run_exactly(frames, taps):
    """The second half starts from a fast-forwarded state and unheard overlap frames; the
    halves join to the bit, voiced or not at the join and at the start."""
    rng = np.random.default_rng(frames)
    src = SourceFilter(CONV, seed=3, taps=taps)
    log_h = rng.normal(-2, 1, (frames, BINS)).astype(np.float32)
    log_n = rng.normal(-4, 1, (frames, BINS)).astype(np.float32)
    f0 = np.where(rng.random(frames) < 0.6, rng.uniform(80, 400, frames), 0.0)
    if frames % 2:  # an unvoiced middle
        f0[frames // 2 - 2 : frames // 2 + 2] = 0.0
    if frames > 100:  # an unvoiced start: the oscillator's held f0
        f0[:5] = 0.0
    voiced = f0 > 0
    one = src.offline_log(f0, log_h, log_n, voiced, threads=1)
    two = src.offline_log(f0, log_h, log_n, voiced, threads=2)
    assert one.shape == (frames * CONV.hop_length,) and np.abs(one).max() > 1e-3
    np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("taps", TAPS)
def test_delay_is_within_the_budget_and_the_stream_holds_back_exactly_it(speechlike, taps):
    mel, f0 = speechlike
    voc = _vocoder(taps=taps)
    assert voc.delay == CONV.hop_length + CONV.hop_length // 2 + taps // 2
    assert voc.delay / CONV.sample_rate <= 0.030
    y, st = voc.stream(mel[:, :10], None, f0=f0[:10])
    assert y.size == 10 * CONV.hop_length - voc.delay
    assert voc.flush(st).size == voc.delay


@pytest.mark.parametrize("taps", TAPS)
def test_many_voices_in_one_network_call_sound_as_each_alone(speechlike, taps):
    mel, f0 = speechlike
    voc = _vocoder(taps=taps)
    shifts = [1.0, 1.5, 0.75]
    alone = [_stream(voc, mel, f0 * k, 2)[: -voc.delay] for k in shifts]
    states, outs = [None] * 3, [[], [], []]
    for i in range(0, mel.shape[1] - 1, 2):
        done = voc.stream_many([mel[:, i : i + 2]] * 3, states, None,
                               [f0[i : i + 2] * k for k in shifts])  # fmt: skip
        for j, (y, st) in enumerate(done):
            outs[j].append(y)
            states[j] = st
    for j in range(3):
        got = np.concatenate(outs[j])
        np.testing.assert_array_equal(got, alone[j][: got.size])


@pytest.mark.parametrize("taps", TAPS)
@pytest.mark.parametrize("hz", [110.0, 220.0, 440.0, 880.0])
def test_the_pitch_heard_is_the_f0_given(hz, taps):
    """Untrained (the mel as the envelope, the DSP's prior): YIN on the output finds the f0
    given within 3 cents, at any pitch in two and a half octaves."""
    y = _vowel(np.full(CONV.sample_rate, 200.0))
    mel = dsp.log_mel(y, CONV)
    torch.manual_seed(0)
    voc = HarmonicVocoder(HarmonicNet(channels=32, blocks=1, phase_taps=taps).eval(), CONV, {})
    f0 = np.full(mel.shape[1], hz)
    out = voc(mel, f0=f0)
    got, voiced = dsp.yin(out, CONV, fmin=60.0, fmax=1000.0)
    mid = slice(10, -10)
    assert voiced[mid].mean() > 0.95
    cents = 1200 * np.abs(np.log2(got[mid][voiced[mid]] / hz))
    assert np.median(cents) <= 3.0


def test_unvoiced_frames_have_no_harmonic_part(speechlike):
    mel, f0 = speechlike
    voc = _vocoder()
    harm, noise = voc.filters(mel, f0)
    assert np.abs(harm[f0 == 0]).max() == 0.0
    assert np.abs(harm[f0 > 0]).min() > 0.0 and np.abs(noise).min() > 0.0


def test_prior_interpolates_the_mel_bands_onto_the_bins():
    p = mel_prior(CONV)
    assert p.shape == (BINS, CONV.n_mels)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert (p >= 0).all()
    flat = np.full(CONV.n_mels, -3.0, np.float32)
    np.testing.assert_allclose(p @ flat, -3.0, rtol=1e-5)


def test_linear_phase_is_the_windowed_zero_phase_response_and_matches_the_kernel():
    """A smooth magnitude through ``linear_phase``: causal, ``taps`` long, symmetric about
    ``taps / 2`` (a constant group delay), its magnitude the windowed one; the numba kernel
    gives the same response."""
    from dsp.harmonic import _response, taps_window

    rng = np.random.default_rng(0)
    smooth = np.convolve(rng.normal(0, 1, BINS + 40), np.hanning(41) / 20, "valid")
    h = linear_phase(torch.tensor(smooth, dtype=torch.float64), CONV.n_fft, 256)
    ir = torch.fft.irfft(h, CONV.n_fft).numpy()
    assert np.abs(ir[256:]).max() < 1e-12 and abs(ir[0]) < 1e-12
    np.testing.assert_allclose(ir[1:256], ir[1:256][::-1], atol=1e-12)  # about 128
    ratio = np.abs(h.numpy()) / np.exp(smooth)
    assert np.median(np.abs(np.log(ratio))) < 0.05  # the envelope kept, smoothed a little
    np.testing.assert_allclose(_response(smooth.astype(np.float32), CONV.n_fft, taps_window(256)),
                               h.numpy(), atol=1e-6 * np.abs(h.numpy()).max())  # fmt: skip
    with pytest.raises(ValueError, match="taps"):
        SourceFilter(CONV, taps=255)


def test_minimum_phase_keeps_the_magnitude_and_is_causal():
    rng = np.random.default_rng(0)
    smooth = np.convolve(rng.normal(0, 1, BINS + 40), np.hanning(41) / 20, "valid")
    log_mag = torch.tensor(smooth, dtype=torch.float64)
    h = minimum_phase(log_mag, CONV.n_fft)
    np.testing.assert_allclose(h.abs().log().numpy(), smooth, atol=1e-6)
    ir = torch.fft.irfft(h, CONV.n_fft).numpy()
    assert np.sum(ir[: CONV.n_fft // 2] ** 2) > 0.999 * np.sum(ir**2)


@pytest.mark.parametrize("taps", TAPS)
def test_training_synthesis_is_the_inference_synthesis(speechlike, taps):
    """The differentiable twin (torch) gives the samples the numba kernels give."""
    mel, f0 = speechlike
    net = _net(taps=taps)
    ref = HarmonicVocoder(net, CONV, {})(mel, f0=f0)
    h, n, _ = SourceFilter(CONV).source(np.concatenate([f0, f0[-1:]]), 0.0, 0)
    with torch.no_grad():
        harm, noise = net(torch.from_numpy(mel)[None], torch.from_numpy(f0).float()[None])
        out = synthesize(torch.from_numpy(h)[None].float(), torch.from_numpy(n)[None].float(),
                         harm, noise, CONV.hop_length)[0].numpy()  # fmt: skip
    half = CONV.hop_length // 2 + taps // 2  # the twin's sample 0 is c_{-1}, half a hop
    # before sample 0; linear phase delays it taps / 2 more
    n_cmp = ref.size - 4 * CONV.hop_length  # the twin lacks the frames after the last
    np.testing.assert_allclose(out[half : half + n_cmp], ref[:n_cmp], atol=1e-6)


@pytest.mark.parametrize(
    ("f0_fix", "match"),
    [
        (lambda f: np.where(np.arange(f.size) == 3, np.nan, f), "finite"),
        (lambda f: -f, ">= 0"),
        (lambda f: f + 20000.0, "Nyquist"),
        (lambda f: f[:-1], "match the mel"),
    ],
)
def test_bad_f0_is_refused_with_what_to_do(speechlike, f0_fix, match):
    mel, f0 = speechlike
    voc = _vocoder()
    with pytest.raises(ValueError, match=match):
        voc(mel, f0=f0_fix(f0))
    with pytest.raises(ValueError, match=match):
        voc.stream(mel[:, :5], None, f0=f0_fix(f0)[:5] if match != "match the mel" else f0[:4])


def test_bad_mel_and_missing_f0_are_refused(speechlike):
    mel, f0 = speechlike
    voc = _vocoder()
    with pytest.raises(ValueError, match="n_mels=80"):
        voc(mel[:40], f0=f0)
    with pytest.raises(ValueError, match="dB mel"):
        voc(20 * mel, f0=f0)
    with pytest.raises(ValueError, match="needs the frame f0"):
        voc(mel)
    with pytest.raises(ValueError, match="below Nyquist"):
        SourceFilter(CONV)(np.full(3, 12000.0), np.zeros((3, BINS)), np.zeros((3, BINS)))


def test_registry_resolves_every_name_and_refuses_the_unknown(tmp_path):
    for name in registry.DSP:
        v = registry.load(name, CONV)
        assert isinstance(v, registry.Vocoder) and not v.needs_f0
    with pytest.raises(registry.RegistryError, match="neither a name"):
        registry.load("no-such-vocoder", CONV)
    voc = _vocoder()
    from model import checkpoint

    path = tmp_path / "h.safetensors"
    net = HarmonicNet(channels=32, blocks=2)
    header = {"kind": "vocoder", "kwargs": net.kwargs, "convention": CONV.to_dict()}
    checkpoint.save(path, net.state_dict(), header)
    loaded = registry.load(str(path), CONV)
    assert isinstance(loaded, HarmonicVocoder) and loaded.needs_f0
    assert loaded.delay == voc.delay


def test_breath_trades_harmonics_for_noise():
    y = _vowel(np.full(CONV.sample_rate, 200.0))
    mel = dsp.log_mel(y, CONV)
    f0 = np.full(mel.shape[1], 200.0)
    torch.manual_seed(0)
    voc = HarmonicVocoder(HarmonicNet(channels=32, blocks=1).eval(), CONV, {})  # the prior
    plain, breathy = voc(mel, f0=f0), voc(mel, f0=f0, breath=1.0)

    def flatness(y):
        s = np.abs(dsp.stft(y.astype(np.float32), CONV)) + 1e-9
        return float(np.mean(np.exp(np.mean(np.log(s), 0)) / np.mean(s, 0)))

    assert flatness(breathy) > 1.5 * flatness(plain)
    states = [None, None]
    outs = [[], []]
    for i in range(0, mel.shape[1] - 1, 2):
        done = voc.stream_many([mel[:, i : i + 2]] * 2, states, None, [f0[i : i + 2]] * 2,
                               breaths=[0.0, 1.0])  # fmt: skip
        for j, (y, st) in enumerate(done):
            outs[j].append(y)
            states[j] = st
    n = sum(len(o) for o in outs[1])
    np.testing.assert_allclose(np.concatenate(outs[1]), breathy[:n], atol=1e-5)
    np.testing.assert_allclose(np.concatenate(outs[0]), plain[:n], atol=1e-5)


def test_repitch_moves_the_mels_harmonics_and_keeps_its_envelope():
    """A vowel's mel moved from 200 to 300 Hz: the envelope is the 200 Hz mel's, the
    harmonic ripple the one a 300 Hz vowel leaves (what the harmonic vocoder follows)."""
    low = dsp.log_mel(_vowel(np.full(CONV.sample_rate, 200.0)), CONV)[:, 20:-20]
    high = dsp.log_mel(_vowel(np.full(CONV.sample_rate, 300.0)), CONV)[:, 20:-20]
    moved = dsp.repitch(low, np.full(low.shape[1], 300.0), CONV)
    np.testing.assert_allclose(dsp.envelope(moved), dsp.envelope(low), atol=0.05)

    def ripple(m):
        return (m - dsp.envelope(m))[:30].mean(1)  # the bands that resolve harmonics

    assert np.corrcoef(ripple(moved), ripple(high))[0, 1] > 0.8
    assert np.corrcoef(ripple(moved), ripple(low))[0, 1] < 0.5
    unvoiced = dsp.repitch(low, np.zeros(low.shape[1]), CONV)
    np.testing.assert_array_equal(unvoiced, low)
    nyquist = CONV.sample_rate / 2  # past the table's top (a note bent too far): its top
    past = dsp.repitch(low, np.full(low.shape[1], 1.2 * nyquist), CONV)
    np.testing.assert_array_equal(past, dsp.repitch(low, np.full(low.shape[1], nyquist), CONV))


@pytest.mark.parametrize("packaged", [False, True])
def test_the_cpu_network_gives_the_torch_networks_filters(speechlike, packaged):
    """The vocoder's network runs without torch (:mod:`model.harmonic_cpu`): its filters are
    the torch network's to float32 rounding, on random and on the packaged weights, and
    every frame the same bits over any chunking."""
    from model import checkpoint
    from model.harmonic_cpu import PARALLEL_FRAMES, CpuHarmonicNet

    mel, f0 = (np.concatenate([a, a], -1) for a in speechlike)
    assert mel.shape[1] >= PARALLEL_FRAMES  # the offline pass splits it over two threads
    if packaged:
        tensors, header = checkpoint.load(registry.PACKAGED["harmonic"], "vocoder")
        net = HarmonicNet(**{k: v for k, v in header["kwargs"].items() if k != "arch"})
        net.load_state_dict(tensors)
    else:
        net = _net(channels=48, taps=256)
    cpu = CpuHarmonicNet({k: v.numpy() for k, v in net.state_dict().items()}, net.kwargs)
    with torch.no_grad():
        m, f = torch.from_numpy(mel)[None], torch.from_numpy(f0).float()[None]
        want = net.eval().stream_log(m, f)[0]
    got = cpu.stream_log(mel[None], f0[None])[0]
    for g, w in zip(got[:2], want[:2], strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=2e-4, rtol=0)
    assert (got[2] == want[2].numpy()).all()
    voices = np.stack([mel, mel - 0.5, mel + 0.3, mel[:, ::-1], mel, mel - 1.0])
    f0s = np.stack([f0, f0 * 1.5, f0 * 0.7, f0[::-1], f0, f0 * 2.0])
    together = cpu.stream_log(voices[:, :, :40], f0s[:, :40])[0][0]  # split over 2 threads
    for v in range(6):
        alone = cpu.stream_log(voices[v : v + 1, :, :40], f0s[v : v + 1, :40])[0][0]
        assert np.array_equal(together[v : v + 1], alone), v
    for chunk in (1, 2, 3, 7, 32):
        st, parts = None, []
        for i in range(0, mel.shape[1], chunk):
            part = slice(i, i + chunk)
            (lh, _, _), st = cpu.stream_log(mel[None, :, part], f0[None, part], st)
            parts.append(lh)
        assert np.array_equal(np.concatenate(parts, 1), got[0]), chunk


def test_the_torch_engine_for_a_gpu_gives_the_cpu_engines_audio(speechlike):
    """On a GPU the vocoder keeps the torch network (:class:`model.harmonic.TorchHarmonicNet`,
    the same numpy interface); here on the CPU it gives the CPU engine's audio within float
    rounding, streamed and batched too, and ``to("cpu")`` returns to the CPU engine."""
    from model.harmonic import TorchHarmonicNet
    from model.harmonic_cpu import CpuHarmonicNet

    mel, f0 = speechlike
    net = _net(taps=256)
    cpu = HarmonicVocoder(net, CONV, {})
    gpu_like = HarmonicVocoder(TorchHarmonicNet(net), CONV, {})
    assert isinstance(cpu.net, CpuHarmonicNet)
    np.testing.assert_allclose(gpu_like(mel, f0=f0), cpu(mel, f0=f0), atol=1e-4)
    done = gpu_like.stream_many([mel[:, :6]] * 2, [None, None], None, [f0[:6]] * 2)
    np.testing.assert_allclose(done[1][0], cpu.stream(mel[:, :6], None, f0=f0[:6])[0], atol=1e-4)
    assert isinstance(gpu_like.to("cpu").net, CpuHarmonicNet)
