"""trainer.sung: Festival speech re-timed onto notes with WORLD (the sung corpus items)."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import dsp
from trainer import sung
from trainer.sung import Expression, Note

TEXT = "the morning light is on the hill"
PITCHES = [60, 62, 64, 65, 67, 65, 64, 62]
DURS = [0.4, 0.4, 0.5, 0.4, 0.4, 0.6, 0.4, 1.0]


@pytest.fixture(scope="module")
def speech():
    if shutil.which("festival") is None:
        pytest.fail("Festival is missing: run `bash setup.sh test`, which installs it")
    return sung.festival_phones(TEXT)


def legato(start=0.5, rest_after=None):
    notes, t = [], start
    for k, (p, d) in enumerate(zip(PITCHES, DURS, strict=True)):
        notes.append(Note(t, d, p, k))
        t += d + (0.3 if k == rest_after else 0.0)
    return notes


def hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def pitch_in(y, sr, a, b):
    f, v = dsp.yin(y)
    t = (np.arange(f.size) * 256 + 128) / sr
    m = (t >= a) & (t <= b) & v
    return f[m]


def test_syllables_by_vowel_nuclei(speech):
    _, _, ph = speech
    syls = sung.syllabify(ph)
    names = lambda idx: [ph[i][2] for i in idx]  # noqa: E731
    got = [(names(s.onset), ph[s.vowel][2], names(s.coda)) for s in syls]
    assert len(got) == 8  # one syllable per vowel, the pauses dropped
    assert got[0] == (["dh"], "ax", [])
    assert got[1][0] == ["m"] and got[1][1] == "ao"
    assert got[3][:2] == (["l"], "ay")
    # every non-silence phone belongs to exactly one syllable, in order
    flat = [i for s in syls for i in (*s.onset, s.vowel, *s.coda)]
    assert flat == [i for i, p in enumerate(ph) if p[2] != "pau"]


def test_retime_keeps_phone_order_and_lengths(speech):
    y, sr, ph = speech
    notes = legato(rest_after=3)
    out, sph, f0 = sung.retime(y, sr, ph, notes, Expression.off())
    assert out.dtype == np.float32 and abs(out.size / sr - sph[-1][1]) < 0.01
    assert np.isfinite(out).all() and 0.01 < np.abs(out).max() < 1.5
    assert [p for _, _, p in sph if p != "pau"] == [p for _, _, p in ph if p != "pau"]
    assert all(abs(a[1] - b[0]) < 1e-6 for a, b in itertools.pairwise(sph))  # tiled
    syls = sung.syllabify(ph)
    sp = [s for s in sph if s[2] != "pau"]
    src = [p for p in ph if p[2] != "pau"]
    pos = 0
    for k, s in enumerate(syls):
        n = notes[k]
        onset = sp[pos : pos + len(s.onset)]
        vowel = sp[pos + len(s.onset)]
        coda = sp[pos + len(s.onset) + 1 : pos + len(s.onset) + 1 + len(s.coda)]
        for got, spoken in zip(onset, src[pos : pos + len(s.onset)], strict=True):
            assert got[1] - got[0] == pytest.approx(spoken[1] - spoken[0], abs=1e-6)
        if s.onset:
            assert onset[-1][1] == pytest.approx(n.start)  # onset ends on the beat
        assert vowel[0] == pytest.approx(n.start)  # the vowel lands on the beat ...
        coda_len = sum(c[1] - c[0] for c in coda)
        nxt_onset = sum(ph[i][1] - ph[i][0] for i in syls[k + 1].onset) if k < 7 else 0.0
        legato_next = k < 7 and notes[k + 1].start - n.end < nxt_onset
        end = min(n.end, notes[k + 1].start - nxt_onset) if legato_next else n.end
        assert vowel[1] + coda_len == pytest.approx(end, abs=1e-6)  # ... and fills the note
        pos += len(s.onset) + 1 + len(s.coda)
    # the rest after note 4 is silence
    gap = out[int((notes[3].end + 0.05) * sr) : int((notes[4].start - 0.1) * sr)]
    assert np.sqrt(np.mean(gap**2)) < 1e-3
    assert (f0 >= 0).all() and f0.max() < 400


def test_f0_follows_the_notes(speech):
    y, sr, ph = speech
    notes = legato()
    out, _, _ = sung.retime(y, sr, ph, notes, Expression.off())
    for n in notes:
        f = pitch_in(out, sr, n.start + 0.3 * n.dur, n.end - 0.3 * n.dur)
        assert f.size >= 5
        cents = 1200 * np.log2(np.median(f) / hz(n.pitch))
        assert abs(cents) < 8, (n, cents)


def test_octave_from_speech_keeps_envelope(speech):
    y, sr, ph = speech
    notes = [Note(n.start, n.dur, n.pitch + 12, n.syllable) for n in legato()]
    out, _, _ = sung.retime(y, sr, ph, notes, Expression.off())
    n = notes[-1]
    f = pitch_in(out, sr, n.start + 0.3 * n.dur, n.end - 0.3 * n.dur)
    assert abs(1200 * np.log2(np.median(f) / hz(n.pitch))) < 10


def test_vibrato_off_is_flat_and_on_wobbles(speech):
    y, sr, ph = speech
    notes = legato()
    n = notes[-1]  # the 1 s note
    a, b = n.start + 0.45 * n.dur, n.end - 0.1 * n.dur
    flat, _, _ = sung.retime(y, sr, ph, notes, Expression.off())
    c = 1200 * np.log2(pitch_in(flat, sr, a, b) / hz(n.pitch))
    assert c.std() < 3
    vib = Expression(fluctuation=0, overshoot=0, preparation=0)
    wob, _, f0 = sung.retime(y, sr, ph, notes, vib)
    c = 1200 * np.log2(pitch_in(wob, sr, a, b) / hz(n.pitch))
    assert 15 < c.std() * np.sqrt(2) < 60  # about the 35 cents asked
    # the contour itself: 5.5 Hz
    t = np.arange(f0.size) * sung.FRAME_PERIOD / 1000
    m = (t >= a) & (t <= b)
    x = 1200 * np.log2(f0[m] / hz(n.pitch))
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size), 4096))
    freqs = np.fft.rfftfreq(4096, sung.FRAME_PERIOD / 1000)
    assert abs(freqs[np.argmax(spec)] - 5.5) < 0.3


def test_melisma_holds_the_vowel(speech):
    y, sr, ph = speech
    notes = legato()[:-1]
    last = notes[-1]
    notes += [Note(last.end, 0.4, 64, 7), Note(last.end + 0.4, 0.6, 60, 7)]
    out, sph, _ = sung.retime(y, sr, ph, notes, Expression.off())
    ih = [s for s in sph if s[2] == "ih"][-1]
    assert ih[0] == pytest.approx(last.end) and ih[1] > last.end + 0.8
    for n in notes[-2:]:
        f = pitch_in(out, sr, n.start + 0.3 * n.dur, n.end - 0.3 * n.dur)
        assert abs(1200 * np.log2(np.median(f) / hz(n.pitch))) < 10


def test_melodies_reproducible_and_in_range():
    a = sung.melody(np.random.default_rng(5), 40, median_f0=200)
    b = sung.melody(np.random.default_rng(5), 40, median_f0=200)
    c = sung.melody(np.random.default_rng(6), 40, median_f0=200)
    assert a == b and a != c
    centre = 69 + 12 * np.log2(200 / 440)
    many = [n for s in range(20) for n in sung.melody(np.random.default_rng(s), 40, 200)]
    assert all(0.15 <= n.dur <= 2.0 for n in many)
    p = np.array([n.pitch for n in many])
    assert p.min() >= centre - 12 and p.max() <= centre + 12 and p.max() - p.min() > 15
    syl = [n.syllable for n in a]
    assert sorted(set(syl)) == list(range(40)) and syl == sorted(syl)
    assert any(x.start > y.end + 0.05 for y, x in itertools.pairwise(many))  # rests
    assert len(many) > 20 * 40  # melismas


def test_melody_register_replaces_the_speakers_range():
    """``register`` (``--sung-range``): the melodies keep to it whatever the speaker's f0,
    and reach its top (the high notes a voice must be trained on to sing them)."""
    many = [
        n
        for s in range(20)
        for n in sung.melody(np.random.default_rng(s), 40, 150, register=(60.0, 77.0))
    ]
    p = np.array([n.pitch for n in many])
    assert p.min() >= 60 and p.max() <= 77 and p.max() >= 75
    plain = sung.melody(np.random.default_rng(1), 40, 150)
    assert max(n.pitch for n in plain) <= 62.4  # 150 Hz: MIDI 50.4 +- 12


def test_retime_reproducible(speech):
    y, sr, ph = speech
    notes = legato()
    a = sung.retime(y, sr, ph, notes, Expression(seed=3))[0]
    b = sung.retime(y, sr, ph, notes, Expression(seed=3))[0]
    c = sung.retime(y, sr, ph, notes, Expression(seed=4))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_make_sung_writes_resumable_items(speech, tmp_path):
    y, sr, ph = speech
    for sub in ("wavs", "segments"):
        (tmp_path / sub).mkdir()
    rows = []
    for i in range(3):
        sf.write(tmp_path / "wavs" / f"u{i}.wav", y, sr, subtype="PCM_16")
        sung.write_lab(tmp_path / "segments" / f"u{i}.lab", ph)
        rows.append(f"u{i}|{TEXT}|{TEXT}\n")
    (tmp_path / "metadata.csv").write_text("".join(rows))
    m = sung.make_sung(tmp_path, 2, seed=1, jobs=1, progress=False)
    assert m["items"] == 2 and not m["failed"]
    meta = (tmp_path / "metadata.csv").read_text().splitlines()
    ids = [r.split("|")[0] for r in meta]
    sung_ids = [i for i in ids if i.endswith("_sung")]
    assert len(ids) == 5 and len(sung_ids) == 2
    for sid in sung_ids:
        w, wsr = sf.read(tmp_path / "wavs" / f"{sid}.wav", dtype="float32")
        lab = sung.read_lab(tmp_path / "segments" / f"{sid}.lab")
        f0 = np.load(tmp_path / "f0" / f"{sid}.npy")
        assert wsr == 22050 and abs(lab[-1][1] - w.size / wsr) < 0.01
        assert f0.shape == (dsp.DEFAULT.n_frames(w.size),) and (f0 > 0).mean() > 0.3
        src = sid[: -len("_sung")]
        assert [p for *_, p in lab if p != "pau"] == [p for *_, p in ph if p != "pau"]
        assert ids.index(sid) == ids.index(src) + 1
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "wavs").glob("*_sung.wav")}
    again = sung.make_sung(tmp_path, 2, seed=1, jobs=1, progress=False)
    assert again["items"] == 2
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "wavs").glob("*_sung.wav")} == before
    assert (tmp_path / "metadata.csv").read_text().splitlines() == meta


def test_lab_round_trip(tmp_path: Path):
    ph = [(0.0, 0.1, "pau"), (0.1, 0.2, "m"), (0.2, 0.35, "aa")]
    sung.write_lab(tmp_path / "x.lab", ph)
    assert sung.read_lab(tmp_path / "x.lab") == ph


def test_corpus_build_sings_its_sentences(tmp_path):
    from trainer import corpus

    m = corpus.build(tmp_path / "c", 2, seed=3, jobs=1, progress=False)
    m = corpus.add_sung(tmp_path / "c", m, sung.make_sung(tmp_path / "c", 1, 3, 1, False))
    assert m["sung"]["items"] == 1 and m["items"] == 3
    assert m["sung"]["history"] == [{"items": 1, "register": None}]
    first = set((tmp_path / "c" / "notes").glob("*.json"))
    again = corpus.build(tmp_path / "c", 2, 3, jobs=1, progress=False)  # as the CLI: resume,
    more = sung.make_sung(tmp_path / "c", 2, 3, 1, False, register=(60.0, 70.0))  # then sing
    m2 = corpus.add_sung(tmp_path / "c", again, more, m["sung"])
    assert m2["items"] == 4 and m2["sung"]["history"] == [
        {"items": 1, "register": None},
        {"items": 2, "register": [60.0, 70.0]},
    ]
    (new,) = set((tmp_path / "c" / "notes").glob("*.json")) - first
    assert all(60 <= n["pitch"] <= 70 for n in json.loads(new.read_text()))
    ids = [r.split("|")[0] for r in (tmp_path / "c" / "metadata.csv").read_text().splitlines()]
    assert sum(i.endswith("_sung") for i in ids) == 2
