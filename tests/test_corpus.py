"""`melgand corpus festival`: the teacher corpus, built by the real Festival."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dsp
from model import g2p
from trainer import corpus, sentences
from trainer.corpus import CorpusError, read_segments

MELGAND = str(Path(sys.executable).parent / "melgand")


def test_twelve_sentences_give_twelve_rows_and_wavs(tiny_corpus):
    rows = (tiny_corpus / "metadata.csv").read_text().splitlines()
    assert len(rows) == 12
    wavs = sorted((tiny_corpus / "wavs").glob("*.wav"))
    assert len(wavs) == 12
    for row in rows:
        item, text, norm = row.split("|")
        assert text and norm and (tiny_corpus / "wavs" / f"{item}.wav").exists()
        info = sf.info(tiny_corpus / "wavs" / f"{item}.wav")
        assert info.samplerate == 22050 and info.channels == 1
        segs = read_segments(tiny_corpus / "segments" / f"{item}.lab")
        starts, ends = np.array([s[0] for s in segs]), np.array([s[1] for s in segs])
        assert starts[0] == 0 and (ends > starts).all() and np.allclose(starts[1:], ends[:-1])
        assert abs(ends[-1] - info.duration) < 0.05  # the segments cover the audio
        assert {p for *_, p in segs} <= set(g2p.PHONES)
    m = json.loads((tiny_corpus / "corpus.json").read_text())
    assert m["complete"] and m["seed"] == 3 and m["coverage"]["phones"] > 0.9


def test_generation_is_reproducible_and_varied():
    a, b, c = sentences.generate(30, 7), sentences.generate(30, 7), sentences.generate(30, 8)
    assert a.sentences == b.sentences and a.sentences != c.sentences
    assert len(set(a.sentences)) == 30
    assert a.coverage["distinct_words"] > 150
    ends = {s[-1] for s in a.sentences}
    assert {".", "?"} <= ends  # statements and questions at least


def test_thousands_of_distinct_words_in_a_thousand_sentences():
    sel = sentences.generate(1000, 1)
    assert sel.coverage["distinct_words"] > 3000
    assert sel.coverage["phones"] == 1.0 and sel.coverage["diphones_of_pool"] > 0.95


def test_resume_keeps_finished_items(tiny_corpus, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(tiny_corpus, out)
    (out / "wavs" / "s3_0005.wav").unlink()  # as if interrupted before this one was done
    keep = out / "wavs" / "s3_0001.wav"
    before = keep.stat().st_mtime_ns
    m = corpus.build(out, 12, 3, progress=False)
    assert m["complete"] and (out / "wavs" / "s3_0005.wav").exists()
    assert keep.stat().st_mtime_ns == before
    assert len((out / "metadata.csv").read_text().splitlines()) == 12


def test_refuses_a_different_corpus(tiny_corpus, tmp_path):
    out = tmp_path / "c"
    shutil.copytree(tiny_corpus, out)
    with pytest.raises(CorpusError, match="holds a different corpus"):
        corpus.build(out, 12, 4, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = subprocess.run(
        [MELGAND, "corpus", "festival", "--out", str(other), "--sentences", "2"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "is not empty and is not a melgand corpus" in r.stderr
    assert (other / "notes.txt").read_text() == "mine"


def test_pitch_shifted_copies(tmp_path):
    out = tmp_path / "ps"
    m = corpus.build(out, 2, 5, pitch_shifts=[4], progress=False)
    rows = [r.split("|")[0] for r in (out / "metadata.csv").read_text().splitlines()]
    assert len(rows) == 4 and sum(r.endswith("_ps+4") for r in rows) == 2
    assert m["pitch_shifts"] == [4]
    src, _ = sf.read(out / "wavs" / f"{rows[0]}.wav", dtype="float32")
    up, _ = sf.read(out / "wavs" / f"{rows[0]}_ps+4.wav", dtype="float32")
    f_src, v_src = dsp.yin(src)
    f_up, v_up = dsp.yin(up)
    both = v_src & v_up
    ratio = np.median(f_up[both] / f_src[both])
    assert abs(12 * np.log2(ratio) - 4) < 0.5  # four semitones up, within half a semitone
    assert (out / "segments" / f"{rows[0]}_ps+4.lab").read_text() == (
        out / "segments" / f"{rows[0]}.lab"
    ).read_text()


def test_cli_reports_coverage(tmp_path):
    out = tmp_path / "cli"
    r = subprocess.run(
        [
            MELGAND,
            "corpus",
            "festival",
            "--out",
            str(out),
            "--sentences",
            "3",
            "--seed",
            "9",
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ),
    )
    assert r.returncode == 0, r.stderr
    assert "3 utterances" in r.stdout and "% of phones" in r.stdout and "diphones" in r.stdout
