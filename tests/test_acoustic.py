"""The acoustic model: streaming equals offline, training resumes exactly, NaN stops cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import dsp
from model import checkpoint
from model.acoustic import AcousticModel, Generator, GeneratorState, upsample
from model.voice import PACKAGED, Voice
from trainer import acoustic, corpus, runtime


def stream_all(gen: Generator, x: torch.Tensor, chunk: int) -> torch.Tensor:
    outs, st = [], None
    for i in range(0, x.shape[1], chunk):
        y, st = gen.stream(x[:, i : i + chunk], st)
        outs.append(y)
    outs.append(gen.flush(st))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("feedback", [0, 16])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_generator_streaming_equals_offline_for_every_chunk_size(r, feedback):
    torch.manual_seed(r)
    gen = Generator(24, 80, 64, 2, r, feedback=feedback).eval()
    x = torch.randn(2, 45, 24)
    with torch.no_grad():
        ref = gen(x)
        for chunk in range(1, 33):
            got = stream_all(gen, x, chunk)
            assert got.shape == ref.shape
            assert (got - ref).abs().max() <= 1e-4, chunk


def test_generator_state_is_explicit():
    gen = Generator(8, 80, 32, 1, 2).eval()
    x = torch.randn(1, 10, 8)
    with torch.no_grad():
        _, st = gen.stream(x[:, :5])
        a, _ = gen.stream(x[:, 5:], st)
        b, _ = gen.stream(x[:, 5:], st)
    torch.testing.assert_close(a, b)
    assert gen.delay == 1


@pytest.mark.parametrize("feedback", [0, 16])
def test_states_cat_and_split_step_streams_together(feedback):
    """Streams with their own pasts, stepped as one batch through ``GeneratorState.cat``, go
    on as each alone would; ``split`` gives each its own state back."""
    torch.manual_seed(0)
    gen = Generator(12, 80, 48, 2, 2, feedback=feedback).eval()
    x = torch.randn(3, 8, 12)
    with torch.no_grad():
        solo = [gen.stream(x[i : i + 1, :5])[1] for i in range(3)]  # one frame pending each
        joined = GeneratorState.cat(solo)
        assert joined.hidden.shape[1] == joined.pending.shape[0] == 3
        for s, back in zip(solo, joined.split(), strict=True):
            assert all(torch.equal(a, b) for a, b in zip(s, back, strict=True))
        y, st = gen.stream(x[:, 5:], joined)
        for i, (s, back) in enumerate(zip(solo, st.split(), strict=True)):
            want, alone = gen.stream(x[i : i + 1, 5:], s)
            assert (y[i : i + 1] - want).abs().max() <= 1e-5
            assert (back.hidden - alone.hidden).abs().max() <= 1e-5
            assert torch.equal(back.pending, alone.pending)


def test_a_voices_statistics_are_typed_and_read_strictly():
    from model.stats import Stats

    header = checkpoint.load(PACKAGED, kind="acoustic")[1]
    stats = Stats.from_dict(header["stats"])
    assert stats.to_dict() == header["stats"] and acoustic.Stats is Stats
    assert Voice.load(PACKAGED).stats == stats
    assert abs(stats.hz(stats.log_f0(220.0)) - 220.0) < 1e-9
    with pytest.raises(ValueError, match="statistics need exactly"):
        Stats.from_dict(header["stats"] | {"pitch_mean": 0.0})


def test_the_audio_encoder_feeds_back_the_frames_already_made():
    """Running free, each step reads the generator's own last frames: teacher-forcing the
    forward with that output reproduces it, and other frames fed back change the result."""
    torch.manual_seed(0)
    gen = Generator(12, 80, 48, 2, 2, feedback=16, context=3).eval()
    x = torch.randn(2, 21, 12)
    with torch.no_grad():
        free = gen(x)
        forced = gen(x, free)
        other = gen(x, free + 1.0)
    assert (forced - free).abs().max() <= 1e-5
    assert (other - free).abs().max() > 1e-2
    # frames before a step's group are all it can see: the first group sees none
    assert (other[:, :2] - free[:, :2]).abs().max() <= 1e-6
    st = gen.initial_state(2)
    assert st.history.shape == (2, 3, 80)


def test_upsample_repeats_tokens_and_marks_position():
    enc = torch.arange(6.0).reshape(1, 3, 2)
    out = upsample(enc, torch.tensor([[2, 1, 3]]), 6)
    assert out.shape == (1, 6, 3)
    assert out[0, :, 0].tolist() == [0, 0, 2, 4, 4, 4]
    assert out[0, :, 2].tolist() == pytest.approx([0, 0.5, 0, 0, 1 / 3, 2 / 3])


def test_segment_durations_sum_to_the_frames():
    segs = [(0.0, 0.01, "pau"), (0.01, 0.012, "k"), (0.012, 0.5, "ae"), (0.5, 0.51, "t")]
    d = acoustic.segment_durations(segs, 43, dsp.DEFAULT)
    assert d.sum() == 43 and (d >= 1).all() and len(d) == 4


def train_kw(**kw):
    return (
        dict(
            steps=12,
            batch_size=4,
            hidden=64,
            save_every=6,
            log_every=3,
            progress=False,
            held_out=0.2,
        )
        | kw
    )


def test_resumed_run_matches_an_uninterrupted_one(corpus_copy, tmp_path):
    torch.set_num_threads(1)  # bit-for-bit comparable runs
    data = corpus_copy
    acoustic.train(data, tmp_path / "a", dsp.DEFAULT, **train_kw())
    acoustic.train(data, tmp_path / "b", dsp.DEFAULT, **train_kw(steps=6))
    acoustic.train(data, tmp_path / "b", dsp.DEFAULT, **train_kw(resume=True))
    la = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in la] == [x["step"] for x in lb] == [3, 6, 9, 12]
    np.testing.assert_allclose([x["total"] for x in lb], [x["total"] for x in la], rtol=1e-4)
    _, header = checkpoint.load(tmp_path / "b" / "acoustic.safetensors", kind="acoustic")
    assert header["provenance"]["step"] == 12 and header["convention"] == dsp.DEFAULT.to_dict()


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(corpus_copy, tmp_path):
    data = corpus_copy
    run = tmp_path / "run"
    acoustic.train(data, run, dsp.DEFAULT, **train_kw(steps=6))
    before = (run / "acoustic.safetensors").read_bytes()
    cache = next((data / ".melgand").glob("features-*"))
    for f in cache.glob("*.npz"):  # every item broken: the first batch meets one
        with np.load(f) as z:
            arrays = dict(z)
        arrays["mel"][:, 3] = np.nan
        np.savez(f, **arrays)
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 6 \(items \['s3_"):
        acoustic.train(data, run, dsp.DEFAULT, **train_kw(resume=True))
    assert (run / "acoustic.safetensors").read_bytes() == before


def test_trained_weights_stream_too(corpus_copy, tmp_path):
    data = corpus_copy
    acoustic.train(data, tmp_path / "run", dsp.DEFAULT, **train_kw(steps=20))
    # each validation (every save_every steps and at the end) leaves plots, audio and logs
    assert sorted(p.name for p in (tmp_path / "run").glob("val_*")) == [
        f"val_{s:07d}{kind}" for s in (6, 12, 18, 20) for kind in (".png", ".wav", "_durations.png")
    ]
    audio, sr = sf.read(tmp_path / "run" / "val_0000020.wav")
    assert sr == dsp.DEFAULT.sample_rate and len(audio) > sr // 4 and np.abs(audio).max() > 0
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    tensors, header = checkpoint.load(tmp_path / "run" / "acoustic.safetensors")
    model = AcousticModel(**header["kwargs"])
    model.load_state_dict(tensors, strict=True)
    model.eval()
    segs = corpus.read_segments(data / "segments" / "s3_0001.lab")
    x = torch.randn(1, 60, model.generator.in_dim)
    with torch.no_grad():
        ref = model.generator(x)
        for chunk in (1, 2, 5, 7, 16, 32):
            assert (stream_all(model.generator, x, chunk) - ref).abs().max() <= 1e-4
    assert len(segs) > 10


def test_a_character_voice_trains_and_speaks(corpus_copy, tmp_path):
    """Character mode (datasets in other languages): aligner durations, then the voice."""
    from model.voice import Voice
    from trainer import align

    data = corpus_copy
    align.train(
        data,
        tmp_path / "al",
        dsp.DEFAULT,
        steps=10,
        batch_size=4,
        token_source="chars",
        held_out=0.2,
        progress=False,
    )
    acoustic.train(
        data,
        tmp_path / "ac",
        dsp.DEFAULT,
        token_source="chars",
        aligner_run=tmp_path / "al",
        **train_kw(steps=6),
    )
    v = Voice.load(tmp_path / "ac" / "acoustic.safetensors", dsp.DEFAULT)
    assert v.frontend.mode == "char" and "a" in v.frontend.symbols
    mel = v.mel("a quiet evening")
    assert mel.shape[0] == 80 and mel.shape[1] >= len("a quiet evening")
    with pytest.raises(ValueError, match="not in this voice's alphabet"):
        v.mel("\u00e6\u00f8\u00e5")


def test_audio_encoder_and_discriminator_train_resume_and_stream(corpus_copy, tmp_path):
    """The optional parts on: the discriminator's weights and optimizer resume exactly, and
    the trained generator with its feedback streams as it runs offline."""
    torch.set_num_threads(1)
    kw = dict(audio_encoder=16, adversarial_weight=0.5, adversarial_start=3)
    acoustic.train(corpus_copy, tmp_path / "a", dsp.DEFAULT, **train_kw(**kw))
    acoustic.train(corpus_copy, tmp_path / "b", dsp.DEFAULT, **train_kw(steps=6, **kw))
    acoustic.train(corpus_copy, tmp_path / "b", dsp.DEFAULT, **train_kw(resume=True, **kw))
    la = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert "disc" not in la[0] and {"disc", "adv", "feature_match"} <= set(la[1])
    for key in ("total", "disc", "adv"):
        np.testing.assert_allclose([x.get(key, 0) for x in lb], [x.get(key, 0) for x in la],
                                   rtol=1e-4)  # fmt: skip
    v = Voice.load(tmp_path / "b" / "acoustic.safetensors", dsp.DEFAULT)
    gen = v.model.model.generator  # feedback: the voice keeps the torch module
    assert gen.audio_encoder is not None
    x = torch.from_numpy(v.frame_inputs("the quick brown fox"))[None]
    with torch.no_grad():
        ref = gen(x)
        for chunk in (1, 3, 8, 32):
            assert (stream_all(gen, x, chunk) - ref).abs().max() <= 1e-4


def test_a_cuda_run_without_cuda_is_refused_with_advice(corpus_copy, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(runtime.DeviceError, match='use "auto" or "cpu"'):
        acoustic.train(corpus_copy, tmp_path / "r", dsp.DEFAULT, **train_kw(device="cuda"))


def test_two_processes_train_with_ddp_over_gloo(corpus_copy, tmp_path):
    """``torchrun`` with two CPU processes: both take part (DDP over gloo), their weights
    agree at the end, and rank 0 alone writes the run."""
    run = tmp_path / "ddp"
    overrides = ["acoustic.steps=4", "acoustic.batch_size=2", "acoustic.hidden=32",
                 "acoustic.save_every=2", "acoustic.held_out=0.2"]  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "daemon.cli", "train", "acoustic", "--data", str(corpus_copy), "--run-dir",
           str(run)] + [a for o in overrides for a in ("--set", o)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["step"] == 4 and metrics["device"] == "cpu"
    assert len((run / "log.jsonl").read_text().splitlines()) == 0  # log_every 50 > 4 steps
    v = Voice.load(run / "acoustic.safetensors", dsp.DEFAULT)
    assert v.mel("one two").shape[0] == 80


def test_the_cpu_engine_is_the_torch_model_and_streams_exactly():
    """The packaged voice runs without torch (:mod:`model.acoustic_cpu`): its encoding,
    durations, prosody, control projection and generator frames are the torch model's to
    float32 rounding; streamed over any chunks, each voice's frames are its offline ones to
    the bit, and batched with other voices (split over two threads) within rounding."""
    from model import checkpoint
    from model.acoustic_cpu import CpuAcoustic

    tensors, header = checkpoint.load(PACKAGED, kind="acoustic")
    model = AcousticModel(**header["kwargs"])
    model.load_state_dict(tensors)
    model.eval()
    cpu = CpuAcoustic({k: v.numpy() for k, v in tensors.items()}, header["kwargs"])
    tokens = [1, 5, 7, 9, 12, 3, 20, 2]
    with torch.no_grad():
        enc = model.encoder(torch.tensor([tokens]))
        want = (enc[0], model.duration(enc)[0, :, 0], model.prosody(enc)[0])
    for got, w in zip(cpu.encode(tokens), want, strict=True):
        np.testing.assert_allclose(got, w.numpy(), atol=1e-5)
    controls = torch.randn(9, 3)
    with torch.no_grad():
        proj = model.project_controls(controls, 1.0).numpy()
    np.testing.assert_allclose(cpu.project_controls(controls.numpy(), 1.0), proj, atol=1e-5)
    torch.manual_seed(0)
    x = torch.randn(6, 41, model.generator.in_dim)  # 6 voices: a batch split over 2 threads
    with torch.no_grad():
        ref = model.generator(x).numpy()
    batched = cpu.generate(x.numpy())
    np.testing.assert_allclose(batched, ref, atol=1e-4)
    for b in range(6):
        offline = cpu.generate(x[b : b + 1].numpy())
        np.testing.assert_allclose(offline, batched[b : b + 1], atol=1e-5)
        for chunk in (1, 2, 3, 8, 32):
            st, parts = None, []
            for i in range(0, 41, chunk):
                y, st = cpu.stream(x[b : b + 1, i : i + chunk].numpy(), st)
                parts.append(y)
            assert np.array_equal(np.concatenate([*parts, cpu.flush(st)], 1), offline), chunk
    states = cpu.part(cpu.join([cpu.initial_state(1) for _ in range(3)]))
    assert len(states) == 3 and states[0].hidden.shape == (header["kwargs"]["layers"], 1, 384)
