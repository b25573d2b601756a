"""The acoustic model: streaming equals offline, training resumes exactly, NaN stops cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dsp
from model import checkpoint
from model.acoustic import AcousticModel, Generator, upsample
from trainer import acoustic, corpus


def stream_all(gen: Generator, x: torch.Tensor, chunk: int) -> torch.Tensor:
    outs, st = [], None
    for i in range(0, x.shape[1], chunk):
        y, st = gen.stream(x[:, i : i + chunk], st)
        outs.append(y)
    outs.append(gen.flush(st))
    return torch.cat(outs, 1)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_generator_streaming_equals_offline_for_every_chunk_size(r):
    torch.manual_seed(r)
    gen = Generator(24, 80, 64, 2, r).eval()
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
    # each validation (every save_every steps and at the end) leaves a mel plot and logs
    assert sorted(p.name for p in (tmp_path / "run").glob("val_*.png")) == [
        "val_0000006.png",
        "val_0000012.png",
        "val_0000018.png",
        "val_0000020.png",
    ]
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
