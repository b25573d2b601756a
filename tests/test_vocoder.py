"""The MelGAN vocoders: PQMF, exact streaming, losses, the trainer and `melgand vocode`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import dsp
from daemon import cli, config
from dsp import pqmf
from model import checkpoint, registry
from model.discriminators import MultiScale
from model.losses import LogMel, MultiResolutionSTFTLoss, frame_log_magnitude
from model.magnitude import MagnitudeNet, MagnitudeVocoder
from model.melgan import MelGAN
from model.pqmf import PQMF
from trainer import vocoder


def test_pqmf_reconstructs_and_torch_matches_numpy():
    x = np.random.default_rng(0).standard_normal(8192)
    bands = pqmf.analysis(x)
    assert bands.shape == (4, 2048)
    y = pqmf.synthesis(bands)
    err = y[100:-100] - x[100:-100]
    assert 10 * np.log10(np.mean(x[100:-100] ** 2) / np.mean(err**2)) > 55  # dB
    p = PQMF()
    tb = p.analysis(torch.tensor(x, dtype=torch.float32)[None])[0]
    np.testing.assert_allclose(tb.numpy(), bands, atol=1e-5)
    ts = p.synthesis(tb[None])[0].numpy()
    np.testing.assert_allclose(ts, y, atol=1e-5)
    # the causal synthesis is the centered one, taps / 2 samples late, and streams
    causal = p.synthesis_causal(tb[None])[0].numpy()
    np.testing.assert_allclose(causal[31:], ts[:-31], atol=1e-5)
    outs, cache = [], p.init_cache(1)
    for i in range(0, 2048, 77):
        o, cache = p.stream(tb[None, :, i : i + 77], cache)
        outs.append(o)
    np.testing.assert_allclose(torch.cat(outs, -1)[0].numpy(), causal, atol=1e-6)


def test_paper_melgan_has_the_papers_size():
    n = sum(p.numel() for p in MelGAN(channels=512, ratios=(8, 8, 2, 2), bands=1).parameters())
    assert 4.2e6 < n < 4.4e6
    with pytest.raises(ValueError, match="must multiply to hop 256"):
        MelGAN(ratios=(4, 4), bands=4)


def stream_all(net, mel, chunk):
    outs, st = [], None
    for i in range(0, mel.shape[-1], chunk):
        y, st = net.stream(mel[..., i : i + chunk], st)
        outs.append(y)
    outs.append(net.flush(st))
    return torch.cat(outs, -1)


@pytest.mark.parametrize(
    "kw",
    [
        dict(bands=1, ratios=(8, 8, 4), channels=32, lookahead=2),
        dict(bands=4, ratios=(4, 4, 4), channels=32, lookahead=1),
        dict(bands=4, ratios=(4, 4, 4), channels=16, lookahead=0),
    ],
)
def test_streaming_equals_offline_for_every_chunk_size(kw):
    torch.manual_seed(0)
    net = MelGAN(**kw).eval()
    assert net.delay == kw["lookahead"] * 256
    mel = torch.randn(2, 80, 37) - 4
    with torch.no_grad():
        ref = net(mel)
        assert ref.shape == (2, 37 * 256)
        for chunk in range(1, 33):
            got = stream_all(net, mel, chunk)
            assert got.shape == ref.shape, chunk
            assert (got - ref).abs().max() <= 1e-4, chunk
        # the first `delay` samples come from the flush, not the first chunk
        first, _ = net.stream(mel[..., :1])
        assert first.shape[-1] == 256 - net.delay if net.delay < 256 else first.shape[-1] == 0


@pytest.mark.parametrize(("lookahead", "refine"), [(0, 0), (1, 0), (2, 0), (1, 8), (2, 3)])
def test_magnitude_vocoder_streams_exactly_for_every_chunk_size(lookahead, refine):
    torch.manual_seed(0)
    net = MagnitudeNet(channels=32, blocks=2, lookahead=lookahead).eval()
    assert net.delay == lookahead
    mel = torch.randn(2, 80, 37) - 4
    with torch.no_grad():
        ref = net(mel)
        assert ref.shape == (2, 513, 37)
        for chunk in range(1, 33):
            got = stream_all(net, mel, chunk)
            assert got.shape == ref.shape, chunk
            assert (got - ref).abs().max() <= 1e-4, chunk
        assert net.stream(mel[..., :2])[0].shape[-1] == max(0, 2 - lookahead)
    # and through RTISI-LA: audio chunks equal the offline audio after the stated delay
    net.head.bias.data -= 5  # magnitudes at speech level, not random weights' (audio ~ 0.1)
    voc = MagnitudeVocoder(net, dsp.DEFAULT, {}, rtisi_lookahead=2, rtisi_iters=2,
                           mel_refine=refine)  # fmt: skip
    assert voc.delay == lookahead * 256 + 2 * 256 + 384
    m = mel[0].numpy()
    whole = voc(m)
    assert whole.shape == (37 * 256,) and 1e-3 < np.abs(whole).max() < 2
    for chunk in (1, 2, 3, 8, 32):
        outs, st = [], None
        for i in range(0, 37, chunk):
            y, st = voc.stream(m[:, i : i + chunk], st)
            outs.append(y)
        outs.append(voc.flush(st))
        assert np.abs(np.concatenate(outs) - whole).max() <= 1e-4, chunk


def test_mel_refinement_pulls_a_magnitude_toward_its_mel_and_keeps_its_structure():
    """refine_to_mel: the mel of the refined magnitude is closer to the target the more steps
    it takes; bins that were zero stay zero (multiplicative), the harmonics stay where the
    network put them; and the frames are independent (a chunk gives the same bits)."""
    rng = np.random.default_rng(4)
    b = dsp.mel_basis(dsp.DEFAULT, np.float64)
    truth = np.exp(rng.normal(-3, 1.5, (513, 12)))
    target = b @ truth
    guess = truth * np.exp(rng.normal(0, 0.7, truth.shape))  # fine structure right, level off
    guess[100:110] = 0.0
    errs = [np.abs(np.log(b @ dsp.refine_to_mel(guess, target, iters=k) + 1e-9)
                   - np.log(target)).mean() for k in (0, 2, 8, 32)]  # fmt: skip
    assert errs[0] > errs[1] > errs[2] > errs[3] and errs[3] < 0.4 * errs[0], errs
    got = dsp.refine_to_mel(guess, target, iters=8)
    assert (got[100:110] == 0).all() and (got > 0).sum() == (guess > 0).sum()
    part = dsp.refine_to_mel(guess[:, 3:5], target[:, 3:5], iters=8)
    assert np.array_equal(part, got[:, 3:5])


def test_magnitude_targets_are_the_mel_frames_own_spectra():
    """The frames the magnitude net is trained to predict are the ones the mel analysed."""
    x = np.random.default_rng(3).standard_normal(40 * 256).astype(np.float32)
    padded = F.pad(torch.from_numpy(x)[None], (384, 384))
    got = frame_log_magnitude(padded, dsp.DEFAULT, torch.hann_window(1024))[0].numpy()
    spec = np.abs(dsp.stft(x, dsp.DEFAULT))
    want = np.log(np.maximum(spec, 1e-5))
    assert got.shape == want.shape == (513, 40)
    np.testing.assert_allclose(got[:, 2:-2], want[:, 2:-2], atol=1e-2)  # float32 FFTs


def test_losses_and_discriminator_shapes():
    x = torch.tensor(np.random.default_rng(1).standard_normal((2, 8192)), dtype=torch.float32)
    loss = MultiResolutionSTFTLoss()
    sc, mag = loss(x, x)
    assert sc.item() == pytest.approx(0, abs=1e-6) and mag.item() == pytest.approx(0, abs=1e-6)
    sc, mag = loss(0.5 * x, x)
    assert sc.item() == pytest.approx(0.5, abs=1e-3) and mag.item() == pytest.approx(0.693, 1e-3)
    lm = LogMel(dsp.DEFAULT)(x[:1])[0].numpy()
    np.testing.assert_allclose(lm, dsp.log_mel(x[0].numpy()), atol=1e-4)
    judged = MultiScale(width=4)(x)
    assert [lg.shape for lg, _ in judged] == [(2, 32), (2, 16), (2, 8)]


def test_harmonic_level_loss_weighs_each_harmonic_below_fmax():
    """``[vocoder] harmonic_weight``'s term: 0 for the same audio; one of the 9 harmonics
    below 2 kHz twice as loud costs log 2 / 9; harmonics above fmax and unvoiced frames
    count for nothing; the gradient reaches the audio."""
    from model.losses import harmonic_level_loss

    sr, f = 22050, 200.0
    t = np.arange(8192) / sr

    def tone(gains):
        return sum(g * np.cos(2 * np.pi * k * f * t) / k for k, g in enumerate(gains, 1))

    base = tone([1.0] * 14)
    louder = tone([1.0, 1.0, 2.0] + [1.0] * 11)  # harmonic 3 (600 Hz) doubled
    above = tone([1.0] * 11 + [3.0] * 3)  # harmonics 12-14 (2.4-2.8 kHz) tripled
    y = torch.tensor(np.stack([base, louder, above]), dtype=torch.float32, requires_grad=True)
    ref = torch.tensor(np.stack([base] * 3), dtype=torch.float32)
    f0 = torch.full((1, 40), f)
    each = [harmonic_level_loss(y[i : i + 1], ref[i : i + 1], f0, 256, sr).item()
            for i in range(3)]  # fmt: skip
    assert each[0] == pytest.approx(0, abs=1e-6) and each[2] == pytest.approx(0, abs=1e-4)
    assert each[1] == pytest.approx(np.log(2) / 9, rel=0.01)
    unvoiced = f0.clone()
    unvoiced[:, 10:] = 0.0  # only frames 0-9 count: still log 2 / 9, by the mean over them
    assert harmonic_level_loss(y[1:2], ref[1:2], unvoiced, 256, sr).item() == pytest.approx(
        np.log(2) / 9, rel=0.01
    )
    harmonic_level_loss(y[1:2], ref[1:2], f0, 256, sr).backward()
    assert y.grad[1].abs().sum() > 0


def test_harmonic_loss_windows_sit_on_their_frames_f0():
    """The term's windows over a harmonic batch's compared samples are centred on the frames
    whose f0 they are given: on a fast glide the 8th harmonic is found at full level there,
    and a frame further it is not."""
    import random

    from dsp.harmonic import SourceFilter
    from model.losses import harmonic_basis, harmonic_levels

    conv = dsp.DEFAULT
    n = 80 * conv.hop_length
    hz = 150.0 * 2.0 ** (np.arange(n) / n)  # an octave in 80 frames: 15 cents a frame
    y = np.cos(2 * np.pi * 8 * np.cumsum(hz) / conv.sample_rate).astype(np.float32)  # H8 only
    frames = np.arange(80) * conv.hop_length + conv.hop_length // 2  # frame centres
    clip = vocoder.Clip("glide", dsp.log_mel(y, conv)[:, :80], y, hz[frames].astype(np.float32))
    _, f0, _, _, audio = vocoder.harmonic_batch([clip], random.Random(0), 32, 8,
                                                SourceFilter(conv))  # fmt: skip
    full = np.sum(np.hanning(conv.n_fft)) / 2  # a unit cosine's windowed DFT magnitude

    def level(shift: int) -> np.ndarray:
        g = vocoder.compared_f0(f0, 8, conv)[:, shift : shift + 20]
        basis = harmonic_basis(g, conv.sample_rate, conv.n_fft, 10000.0, k_max=8)
        return harmonic_levels(audio, basis, conv.hop_length)[0, :, 7].numpy() / full

    assert level(0).min() > 0.9
    assert (level(0) - level(1) > 0.15).all()


def kw(**over):
    return (
        dict(
            steps=6,
            batch_size=2,
            channels=32,
            segment_frames=16,
            context_frames=4,
            adversarial_start=3,
            feature_match_weight=1.0,
            disc_width=4,
            save_every=3,
            held_out=0.2,
            progress=False,
            log_every=1,
            val_items=1,
        )
        | over
    )


@pytest.mark.parametrize("arch", ["melgan", "magnitude", "harmonic"])
def test_vocoder_training_resumes_exactly_and_streams(corpus_copy, tmp_path, arch):
    torch.set_num_threads(1)
    extra = {"harmonic_weight": 0.5} if arch == "harmonic" else {}
    vocoder.train(corpus_copy, tmp_path / "a", dsp.DEFAULT, **kw(arch=arch, **extra))
    vocoder.train(corpus_copy, tmp_path / "b", dsp.DEFAULT, **kw(steps=4, arch=arch, **extra))
    vocoder.train(corpus_copy, tmp_path / "b", dsp.DEFAULT,
                  **kw(resume=True, arch=arch, **extra))  # fmt: skip
    la = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lb] == list(range(1, 7))
    if arch == "melgan":
        assert "disc" not in la[2] and {"disc", "adv", "feature_match"} <= set(la[3])
    keys = {"magnitude": ("total", "spectral", "sc"), "melgan": ("total", "sc", "mel", "disc"),
            "harmonic": ("total", "sc", "mag", "mel", "harmonics")}[arch]  # fmt: skip
    assert set(keys) <= set(la[3])
    for key in keys:
        np.testing.assert_allclose([x.get(key, 0) for x in lb], [x.get(key, 0) for x in la],
                                   rtol=1e-4)  # fmt: skip
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert {"val_pesq_wb", "val_stoi", "val_mel_l1"} <= set(metrics)
    assert 1.0 <= metrics["val_pesq_wb"] <= 4.7 and -1 <= metrics["val_stoi"] <= 1
    if arch == "harmonic":  # the pitch heard against the f0 given, on held-out audio
        assert metrics["val_pitch_cents"] < 20 and 0 <= metrics["val_voicing_lost"] <= 1
    assert (tmp_path / "b" / "val_0000006.wav").is_file()
    assert (tmp_path / "b" / "val_0000006.png").is_file()
    # trained weights, weight norm baked in: streaming still equals offline
    v = registry.load_checkpoint(tmp_path / "b" / "vocoder.safetensors", dsp.DEFAULT)
    audio = sf.read(next((corpus_copy / "wavs").glob("*.wav")))[0][:20000]
    mel = dsp.log_mel(audio)
    hz, voiced = dsp.yin(audio)
    f0 = (hz * voiced)[: mel.shape[1]]
    ref = v(mel, f0=f0)
    for chunk in (1, 2, 5, 32):
        outs, st = [], None
        for i in range(0, mel.shape[1], chunk):
            y, st = v.stream(mel[:, i : i + chunk], st, f0=f0[i : i + chunk])
            outs.append(y)
        outs.append(v.flush(st))
        assert np.abs(np.concatenate(outs) - ref).max() <= 1e-4


def test_nan_stops_the_vocoder_run_and_keeps_the_checkpoint(corpus_copy, tmp_path):
    run = tmp_path / "run"
    vocoder.train(corpus_copy, run, dsp.DEFAULT, **kw(steps=3))
    before = (run / "vocoder.safetensors").read_bytes()
    cache = next((corpus_copy / ".melgand").glob("features-*"))
    for f in cache.glob("*.npz"):
        with np.load(f) as z:
            arrays = dict(z)
        arrays["mel"][:] = np.nan
        np.savez(f, **arrays)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3 \(items \['s3_"):
        vocoder.train(corpus_copy, run, dsp.DEFAULT, **kw(resume=True))
    assert (run / "vocoder.safetensors").read_bytes() == before


def test_vocode_cli_with_a_checkpoint_and_a_refused_convention(corpus_copy, tmp_path, capsys):
    run = tmp_path / "run"
    vocoder.train(corpus_copy, run, dsp.DEFAULT, **kw(steps=1, adversarial_start=10))
    wav = next((corpus_copy / "wavs").glob("*.wav"))
    out = tmp_path / "out.wav"
    ckpt = str(run / "vocoder.safetensors")
    assert cli.main(["vocode", str(wav), "-o", str(out), "--vocoder", ckpt]) == 0
    y, sr = sf.read(out)
    assert sr == 22050 and len(y) == len(sf.read(wav)[0]) // 256 * 256
    tensors, header = checkpoint.load(ckpt)
    header["convention"]["n_mels"] = 64
    checkpoint.save(tmp_path / "other.safetensors", tensors, header)
    code = cli.main(["vocode", str(wav), "-o", str(out), "--vocoder",
                     str(tmp_path / "other.safetensors")])  # fmt: skip
    assert code == 2 and "n_mels" in capsys.readouterr().err


def test_packaged_vocoder_is_the_default_streams_and_beats_the_dsp_vocoder(tiny_corpus):
    """The vocoder beside the default voice: loaded by name, exact in streaming on its
    trained weights, and better than the DSP vocoder on teacher audio it never trained on
    (the test corpus is another seed's sentences)."""
    cfg = config.load()
    voc = cli._vocoder(cfg, "neural")
    assert isinstance(voc, MagnitudeVocoder)
    assert voc.mel_refine == cfg.vocoder.mel_refine > 0  # trained and packaged with it
    assert voc.header["provenance"]["command"].startswith("melgand train vocoder")
    dsp_voc = cli._vocoder(cfg, "rtisi")
    wavs = sorted((tiny_corpus / "wavs").glob("*.wav"))[:2]
    ours, theirs = [], []
    for w in wavs:
        y = sf.read(w, dtype="float32")[0]
        y = y[: len(y) // 256 * 256]
        mel = dsp.log_mel(y)
        out = voc(mel)
        assert out.shape == y.shape
        ours.append(vocoder.quality(y, out, 22050)["pesq_wb"])
        theirs.append(vocoder.quality(y, dsp_voc(mel), 22050)["pesq_wb"])
    assert np.mean(ours) > np.mean(theirs), (ours, theirs)
    outs, st = [], None
    for i in range(0, mel.shape[1], 2):
        part, st = voc.stream(mel[:, i : i + 2], st)
        outs.append(part)
    outs.append(voc.flush(st))
    assert np.abs(np.concatenate(outs) - out).max() <= 1e-4


def test_packaged_harmonic_vocoder_is_the_default_and_sounds_the_f0_it_is_given(tiny_corpus):
    """The harmonic vocoder beside the default voice: the renders' default, trained (its
    copy of teacher audio it never heard is intelligible: STOI), in tune with the f0
    analysed, and exact in streaming on its trained weights."""
    from model.harmonic_vocoder import HarmonicVocoder

    cfg = config.load()
    voc = cli._vocoder(cfg, None)
    assert isinstance(voc, HarmonicVocoder) and cfg.daemon.render_vocoder == "harmonic"
    assert voc.header["provenance"]["command"].startswith("melgand train vocoder")
    y = sf.read(sorted((tiny_corpus / "wavs").glob("*.wav"))[0], dtype="float32")[0]
    y = y[: len(y) // 256 * 256]
    mel = dsp.log_mel(y)
    hz, voiced = dsp.yin(y)
    f0 = (hz * voiced)[: mel.shape[1]]
    out = voc(mel, f0=f0)
    assert vocoder.quality(y, out, 22050)["stoi"] > 0.9
    cents, lost = vocoder.pitch_error(f0, out, dsp.DEFAULT)
    assert cents < 15 and lost < 0.1
    outs, st = [], None
    for i in range(0, mel.shape[1], 3):
        part, st = voc.stream(mel[:, i : i + 3], st, f0=f0[i : i + 3])
        outs.append(part)
    outs.append(voc.flush(st))
    np.testing.assert_array_equal(np.concatenate(outs), out)


@pytest.mark.parametrize("refine", [0, 8])
def test_many_voices_in_one_network_call_sound_as_each_alone(refine):
    """The daemon steps all its voices' magnitude networks in one call: each voice's samples
    are the bits it would get alone, voices joining late included."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(1)
    net = MagnitudeNet(channels=32, blocks=2, lookahead=1)
    net.head.bias.data -= 5
    voc = MagnitudeVocoder(net, dsp.DEFAULT, {}, rtisi_lookahead=2, rtisi_iters=2,
                           mel_refine=refine)  # fmt: skip
    rng = np.random.default_rng(0)
    mels = [rng.normal(-5, 2, (80, 24)).astype(np.float32) for _ in range(4)]
    alone = [voc.stream(m)[0] for m in mels]  # one chunk of all 24 frames each
    start = [0, 0, 0, 6]  # the last voice joins three chunks late
    states, outs = [None] * 4, [[] for _ in range(4)]
    with ThreadPoolExecutor(2) as pool:
        for i in range(0, 30, 2):
            act = [j for j in range(4) if start[j] <= i < start[j] + 24]
            chunks = [mels[j][:, i - start[j] : i - start[j] + 2] for j in act]
            for j, (y, s) in zip(act, voc.stream_many(chunks, [states[j] for j in act], pool),
                                 strict=True):  # fmt: skip
                states[j] = s
                outs[j].append(y)
    for j in range(4):
        assert np.array_equal(np.concatenate(outs[j]), alone[j]), j


def test_voice_mels_alone_or_beside_the_analysed_ones(tiny_corpus):
    """`--voice`: the acoustic model's teacher-forced mels, aligned to the same audio; with
    voice_mix, beside the analysed mels as items of their own."""
    from model.voice import PACKAGED

    analysed = {c.id: c for c in vocoder.load_clips(tiny_corpus, dsp.DEFAULT)}
    voiced = {c.id: c for c in vocoder.load_clips(tiny_corpus, dsp.DEFAULT, PACKAGED)}
    both = {c.id: c for c in vocoder.load_clips(tiny_corpus, dsp.DEFAULT, PACKAGED, mix=True)}
    assert set(voiced) == set(analysed)
    assert set(both) == set(analysed) | {f"{i}~voice" for i in analysed}
    for i, c in analysed.items():
        v = both[f"{i}~voice"]
        assert v.mel.shape[1] * 256 == len(v.audio) and len(v.audio) <= len(c.audio) + 256
        np.testing.assert_array_equal(both[i].mel, c.mel)
        assert not np.allclose(v.mel, c.mel[:, : v.mel.shape[1]])  # predicted, not analysed
        np.testing.assert_array_equal(voiced[i].mel, v.mel)


def test_repitch_mix_moves_only_the_mels_harmonics():
    """``[vocoder] repitch_mix``: a clip's mel gets another pitch's ripple, its envelope and
    the f0 the network is given stay; 0 leaves the batch as it was (same draws)."""
    import random

    from dsp.harmonic import SourceFilter

    conv = dsp.DEFAULT
    t = np.arange(conv.sample_rate) / conv.sample_rate
    y = (0.1 * np.sign(np.sin(2 * np.pi * 200.0 * t))).astype(np.float32)
    mel = dsp.log_mel(y, conv)
    n = mel.shape[1]
    f0 = np.full(n, 200.0, np.float32)
    clip = vocoder.Clip("a", mel, y[: n * conv.hop_length], f0)
    src = SourceFilter(conv)
    plain = vocoder.harmonic_batch([clip], random.Random(3), 32, 8, src)
    same = vocoder.harmonic_batch([clip], random.Random(3), 32, 8, src, 0.0)
    moved = vocoder.harmonic_batch([clip], random.Random(3), 32, 8, src, 1.0)
    for a, b in zip(plain, same, strict=True):
        assert torch.equal(a, b)
    m0, m1 = plain[0][0].numpy(), moved[0][0].numpy()
    assert torch.equal(plain[1], moved[1])  # the f0 given is the audio's
    np.testing.assert_allclose(dsp.envelope(m1), dsp.envelope(m0), atol=0.05)
    assert np.abs((m1 - dsp.envelope(m1)) - (m0 - dsp.envelope(m0)))[:30].mean() > 0.1


def test_package_sets_inference_settings_and_keeps_the_weights(tmp_path):
    """``python -m trainer.package vocoder SRC DST --set noise_gate=-7``: the weights and
    the checkpoint's own header parts unchanged, the setting in the header; a setting that
    would overwrite the checkpoint's own parts, or no JSON, is refused."""
    import subprocess
    import sys

    src = "model/voices/default/harmonic.safetensors"
    dst = tmp_path / "h.safetensors"
    run = [sys.executable, "-m", "trainer.package", "vocoder", src, str(dst)]
    subprocess.run([*run, "--set", "noise_gate=-7", "--metrics", '{"x": 1}'], check=True)
    t0, h0 = checkpoint.load(src, kind="vocoder")
    t1, h1 = checkpoint.load(dst, kind="vocoder")
    assert h1["noise_gate"] == -7 and h1["metrics"]["x"] == 1 and h1["kwargs"] == h0["kwargs"]
    assert all(torch.equal(t0[k], t1[k]) for k in t0)
    for bad in ("kind=1", "noise_gate=loud"):
        r = subprocess.run([*run, "--set", bad], capture_output=True, text=True)
        assert r.returncode != 0 and "--set" in r.stderr
