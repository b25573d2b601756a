"""`melgand sing`: scores in JSON and MIDI/KAR, sung in tune and on the beat."""

from __future__ import annotations

import json
import logging

import librosa
import mido
import numpy as np
import pytest
import soundfile as sf

import dsp
from daemon import cli, score
from daemon import protocol as P


def write_kar(path, notes, tempo=500000):
    """A one-track MIDI file with lyric events before each note (as KAR files carry them)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    tr.append(mido.MetaMessage("text", text="@Tmelgand test", time=0))
    for pitch, beats, lyric in notes:
        tr.append(mido.MetaMessage("lyrics", text=lyric, time=0))
        tr.append(mido.Message("note_on", note=pitch, velocity=100, time=0))
        tr.append(mido.Message("note_off", note=pitch, velocity=0, time=int(beats * 480)))
    mid.save(path)


def test_midi_scores_carry_notes_lyrics_and_tempo(tmp_path):
    path = tmp_path / "song.kar"
    write_kar(path, [(60, 1, "hel-"), (64, 0.5, "lo"), (67, 1, "world")], tempo=600000)
    sing = score.load(path)
    assert [n["pitch"] for n in sing.notes] == [60, 64, 67]
    assert [n["lyric"] for n in sing.notes] == ["hel-", "lo", "world"]
    assert [round(n["start"], 3) for n in sing.notes] == [0.0, 0.6, 0.9]  # 0.6 s a beat
    assert sing.notes[1]["dur"] == pytest.approx(0.3)
    assert score.phones(sing.notes)[:2] == [("hh", "ax"), ("l", "ow")]  # the word split
    assert score.phones([{"lyric": "la"}, {"lyric": "_"}]) == [("l", "aa"), ("aa",)]


def test_bad_scores_are_refused_by_name(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"notes": [{"pitch": 60}]}')
    with pytest.raises(score.ScoreError, match=r"bad.json: note 0 needs numbers"):
        score.load(bad)
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not midi")
    with pytest.raises(score.ScoreError, match="not a readable MIDI file"):
        score.load(junk)
    with pytest.raises(score.ScoreError, match="no such score file"):
        score.load(tmp_path / "missing.json")


def test_sing_cli_sings_in_tune_and_on_the_beat(tmp_path):
    notes = [
        {"pitch": 55, "start": 0.0, "dur": 0.6, "lyric": "la"},
        {"pitch": 62, "start": 0.6, "dur": 0.6, "lyric": "lo"},
        {"pitch": 69, "start": 1.2, "dur": 0.8, "lyric": "mi"},
    ]
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"notes": notes}))
    out = tmp_path / "s.wav"
    assert cli.main(["sing", str(src), "-o", str(out)]) == 0
    y, sr = sf.read(out, dtype="float32")
    assert len(y) / sr > 2.0
    f0, voiced = dsp.yin(y, dsp.DEFAULT, fmin=80, fmax=800)
    t = (np.arange(len(f0)) + 0.5) * 256 / sr
    fine = librosa.yin(y, fmin=80, fmax=800, sr=sr, frame_length=1024, hop_length=64)
    tf = np.arange(len(fine)) * 64 / sr
    onsets = []
    for n in notes:
        hz = 440 * 2 ** ((n["pitch"] - 69) / 12)
        start = n["start"]  # the file is on the score's timeline
        mid = (t > start + 0.2 * n["dur"]) & (t < start + 0.8 * n["dur"]) & voiced
        assert mid.sum() > 5, n
        cents = 1200 * np.log2(np.median(f0[mid]) / hz)
        assert abs(cents) < 50, (n, cents)
        near = np.flatnonzero(
            (tf > start - 0.1) & (tf < start + 0.15) & (np.abs(12 * np.log2(fine / hz)) < 1)
        )
        assert len(near), n
        onsets.append(tf[near[0]] - start)
    # the vowel lands on the beat (its consonants sung before it); the phrase's legato move
    # over a 7-semitone leap lags it by the overshoot model's rise (about 50 ms)
    assert onsets[0] == 0.0 and max(np.abs(onsets)) < 0.07, onsets


def test_a_score_over_mqtt_is_the_same_command():
    sing = P.mqtt_sing(json.dumps({"notes": [{"pitch": 60, "start": 0, "dur": 1}]}).encode())
    assert sing.notes[0]["lyric"] == "la" and sing.notes[0]["velocity"] == 100


def test_a_melisma_is_one_voice_gliding_without_a_gap(tmp_path):
    notes = [
        {"pitch": 57, "start": 0.0, "dur": 0.4, "lyric": "ah"},
        {"pitch": 60, "start": 0.4, "dur": 0.4, "lyric": "_"},
        {"pitch": 64, "start": 0.8, "dur": 0.6, "lyric": "_"},
    ]
    src = tmp_path / "m.json"
    src.write_text(json.dumps({"notes": notes}))
    out = tmp_path / "m.wav"
    assert cli.main(["sing", str(src), "-o", str(out)]) == 0
    y, sr = sf.read(out, dtype="float32")
    rms = librosa.feature.rms(y=y, hop_length=256)[0]
    t = np.arange(len(rms)) * 256 / sr
    held = (t > 0.1) & (t < 1.3)
    assert rms[held].min() > 0.2 * np.median(rms[held])  # no gap between the notes
    f0 = librosa.yin(y, fmin=80, fmax=800, sr=sr, frame_length=1024, hop_length=256)
    for n in notes:
        m = (t > n["start"] + 0.25 * n["dur"]) & (t < n["start"] + 0.75 * n["dur"])
        hz = 440 * 2 ** ((n["pitch"] - 69) / 12)
        assert abs(1200 * np.log2(np.median(f0[m]) / hz)) < 50, n


def _sing(tmp_path, notes, *flags, name="t"):
    src = tmp_path / f"{name}.json"
    src.write_text(json.dumps({"notes": notes}))
    out = tmp_path / f"{name}.wav"
    assert cli.main(["sing", str(src), "-o", str(out), *flags]) == 0
    y, sr = sf.read(out, dtype="float32")
    assert sr == 22050
    return y


def test_sing_writes_the_scores_own_timeline(tmp_path, capsys):
    """Sample n is score time n / 22050 (issue 14 §4): silence until the first note, whose
    vowel lyric (no consonant sung ahead of the beat) sounds at its start, each note's middle
    at its own pitch; --preroll S puts the same samples S seconds later."""
    notes = [
        {"pitch": 57, "start": 0.5, "dur": 0.5, "lyric": "ah"},
        {"pitch": 64, "start": 1.0, "dur": 0.5, "lyric": "la"},
        {"pitch": 59, "start": 1.5, "dur": 0.4, "lyric": "mi"},
    ]
    y = _sing(tmp_path, notes)
    assert "on the score's timeline" in capsys.readouterr().out
    sr = 22050
    loud = np.flatnonzero(np.abs(y) > 1e-3)
    # the onset: 0.5 s less no lead (the vowel's attack out of the pause takes a frame)
    assert 0.495 <= loud[0] / sr <= 0.53, loud[0] / sr
    assert not y[: int(0.495 * sr)].any()  # and nothing at all before it
    f0, voiced = dsp.yin(y, dsp.DEFAULT, fmin=80, fmax=800)
    t = (np.arange(len(f0)) + 0.5) * 256 / sr
    for k, n in enumerate(notes):
        mid = (t > n["start"] + 0.3 * n["dur"]) & (t < n["start"] + 0.7 * n["dur"]) & voiced
        assert mid.sum() > 5, n
        sung = 69 + 12 * np.log2(np.median(f0[mid]) / 440)
        assert abs(sung - n["pitch"]) < 0.5, (k, sung)  # note k's pitch (note k-1 is 5+ away)

    pre = 0.25
    z = _sing(tmp_path, notes, "--preroll", str(pre), name="pre")
    assert "score time 0 at 0.25 s (--preroll)" in capsys.readouterr().out
    k = round(pre * sr)
    assert not z[:k].any()
    m = min(len(y), len(z) - k)
    assert m > len(y) - 512  # the same content, all of it (the render ends on a block)
    np.testing.assert_allclose(z[k : k + m], y[:m], atol=1e-4)


def test_a_first_consonant_before_time_0_is_cut_or_fits_the_preroll(tmp_path, caplog):
    """A note at 0 whose onset consonant is sung ahead of the beat: cut at the file's start
    (the log says so), the vowel still on the beat; with a preroll the consonant is whole."""
    notes = [{"pitch": 57, "start": 0.0, "dur": 0.5, "lyric": "sa"}]
    with caplog.at_level(logging.INFO, logger="melgand.scheduler"):
        y = _sing(tmp_path, notes)
    assert "onset consonants would start" in caplog.text and "--preroll" in caplog.text
    assert np.abs(y[:256]).max() > 1e-3  # sound from the first samples: the cut consonant
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="melgand.scheduler"):
        z = _sing(tmp_path, notes, "--preroll", "0.5", name="pre")
    assert "onset consonants" not in caplog.text
    k = round(0.5 * 22050)
    lead = k - np.flatnonzero(np.abs(z) > 1e-3)[0]  # the consonant sung before time 0
    assert 0.02 * 22050 < lead < 0.4 * 22050, lead
    f0y, vy = dsp.yin(y, dsp.DEFAULT, fmin=80, fmax=800)
    f0z, vz = dsp.yin(z[k:], dsp.DEFAULT, fmin=80, fmax=800)
    t = (np.arange(len(f0y)) + 0.5) * 256 / 22050
    first_y = t[np.flatnonzero(vy & (np.abs(12 * np.log2(np.maximum(f0y, 1) / 220)) < 1))[0]]
    t = (np.arange(len(f0z)) + 0.5) * 256 / 22050
    first_z = t[np.flatnonzero(vz & (np.abs(12 * np.log2(np.maximum(f0z, 1) / 220)) < 1))[0]]
    assert abs(first_y - first_z) < 0.03, (first_y, first_z)  # the vowel on the same beat


def test_a_duet_sings_each_note_with_the_voice_it_names(tmp_path, capsys):
    """Score notes name their voice ("voice": a packaged one): two voices at once, each as
    it sings alone, mixed; a voice that is not there is an error naming the score."""
    plain = {"start": 0.0, "dur": 1.0, "lyric": "la", "fluctuation": 0, "vibrato_depth": 0}
    joe = {**plain, "pitch": 48, "voice": "joe"}  # no seeded expression: as when alone
    slt = {**plain, "pitch": 64}
    duet = _sing(tmp_path, [joe, slt], name="duet")
    alone = [_sing(tmp_path, [n], name=f"solo{i}") for i, n in enumerate([joe, slt])]
    n = min(len(duet), *(len(a) for a in alone))
    both = alone[0][:n] + alone[1][:n]
    assert np.corrcoef(duet[:n], both)[0, 1] > 0.99
    assert np.corrcoef(alone[0][:n], alone[1][:n])[0, 1] < 0.5  # two different voices
    spectrum = np.abs(np.fft.rfft(duet[5000:17000]))
    hz = np.fft.rfftfreq(12000, 1 / 22050)
    for pitch in (48, 64):  # both fundamentals sound
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        near = (hz > f0 * 0.97) & (hz < f0 * 1.03)
        assert spectrum[near].max() > 10 * np.median(spectrum[(hz > 60) & (hz < 2000)])
    src = tmp_path / "bad.json"
    src.write_text(json.dumps({"notes": [{**slt, "voice": "nobody"}]}))
    capsys.readouterr()
    assert cli.main(["sing", str(src), "-o", str(tmp_path / "bad.wav")]) == 2
    err = capsys.readouterr().err
    assert "bad.json: unknown voice 'nobody'; packaged: ['default', 'joe']" in err
    with pytest.raises(P.ProtocolError, match=r'note 0: "voice" must be a voice'):
        P.mqtt_sing(b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "voice": 7}]}')
    sing = P.mqtt_sing(b'{"voice": "joe", "notes": [{"pitch": 60, "start": 0, "dur": 1}]}')
    assert sing.notes[0]["voice"] == "joe"  # the score's voice, for every note


def test_a_kar_score_is_sung_on_its_timeline_too(tmp_path):
    path = tmp_path / "song.kar"
    write_kar(path, [(57, 1, "ah"), (64, 1, "ah")])  # 0.5 s a beat
    out = tmp_path / "song.wav"
    assert cli.main(["sing", str(path), "-o", str(out)]) == 0
    y, _ = sf.read(out, dtype="float32")
    sung = _sing(tmp_path, score.load(path).notes)  # the same notes as JSON
    np.testing.assert_array_equal(y, sung)
    assert np.abs(y[:768]).max() > 1e-3  # a vowel at 0 sounds at once (its attack: a frame)
