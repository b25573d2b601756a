"""Sung expression: vibrato, overshoot and preparation, portamento, fine fluctuation; each
switched off by a zero; settable per note, live, over MQTT and in the config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dsp
from daemon import config, score
from daemon import protocol as P
from daemon.expression import Expression, contour, for_score_note, tilt
from daemon.synth import Note, Phrase, Renderer
from model import voice as _voice

DT = 256 / 22050  # the synth's frame period
QUIET = dict(fluctuation=0.0)  # the deterministic parts only


def cents(x: np.ndarray, pitch: float) -> np.ndarray:
    return 100.0 * (x - pitch)


def peak_hz(x: np.ndarray, frame_s: float) -> float:
    n = 1 << 14
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size), n))
    return float(np.fft.rfftfreq(n, frame_s)[np.argmax(spec)])


def test_vibrato_rate_and_depth_read_back():
    e = Expression(vibrato_depth=40.0, vibrato_rate=5.8, vibrato_delay=0.2, vibrato_fade=0.3,
                   **QUIET)  # fmt: skip
    x = cents(contour(60.0, 500, e, DT), 60.0)
    steady = x[int(0.6 / DT) :]  # past the delay and the fade
    assert abs(peak_hz(steady, DT) - 5.8) < 0.1
    assert abs((steady.max() - steady.min()) / 2 - 40.0) < 1.5  # half peak-to-peak
    crossings = np.count_nonzero(np.diff(np.sign(steady)) != 0)
    assert abs(crossings / 2 / (steady.size * DT) - 5.8) < 0.3
    # the defaults: on, about 35 cents at 5.7 Hz
    d = Expression()
    assert 25 <= d.vibrato_depth <= 50 and 5.5 <= d.vibrato_rate <= 6.0
    y = cents(contour(60.0, 500, Expression(**QUIET), DT), 60.0)[int(0.7 / DT) :]
    assert abs(peak_hz(y, DT) - 5.7) < 0.1 and abs(y.std() * np.sqrt(2) - 35) < 3


def test_vibrato_waits_for_its_delay_after_the_vowel_then_fades_in():
    e = Expression(vibrato_depth=40.0, vibrato_delay=0.25, vibrato_fade=0.3, overshoot=0,
                   preparation=0, **QUIET)  # fmt: skip
    onset = 6  # the vowel's first frame (the consonants before it)
    x = cents(contour(60.0, 200, e, DT, onset=onset), 60.0)
    start = onset + int(np.ceil(0.25 / DT))
    assert np.all(x[:start] == 0.0)  # nothing before the delay (counted from the vowel)
    ramp = np.abs(x[start : start + int(0.3 / DT)])
    full = np.abs(x[start + int(0.35 / DT) :])
    assert 0 < ramp[:5].max() < 0.3 * 40 and ramp.max() < full.max()  # it fades in
    assert full.max() == pytest.approx(40.0, abs=1.0)
    # a legato move starts the delay over: the vibrato dips out and comes back
    y = cents(contour(60.0, 300, e, DT, moves={150: (60.0, 0.0)}), 60.0)
    assert np.abs(y[150 + int(0.12 / DT) : 150 + int(0.25 / DT)]).max() < 1e-9
    assert np.abs(y[-30:]).max() > 35


def test_a_jump_overshoots_then_settles_and_is_prepared():
    e = Expression(vibrato_depth=0.0, **QUIET)
    x = contour(60.0, 150, e, DT, moves={20: (62.0, e.portamento)})
    assert np.all(x[:20] == 60.0)
    over = cents(x, 62.0)
    assert 5.0 < over.max() < 60.0  # it overshoots the new note (Saitou: ~13 % of a jump)
    peak = int(np.argmax(over))
    assert 20 < peak < 20 + int(0.25 / DT)
    assert np.abs(over[20 + int(0.6 / DT) :]).max() < 1.0  # and settles on it
    assert cents(x[20:40], 60.0).min() < -2.0  # first a move against the change: preparation
    # preparation off: no dip; overshoot and preparation off: the plain (cosine) glide
    no_prep = contour(60.0, 150, Expression(vibrato_depth=0, preparation=0, **QUIET), DT,
                      moves={20: (62.0, 0.08)})  # fmt: skip
    assert no_prep.min() >= 60.0 - 1e-9 and no_prep.max() > 62.05
    plain = contour(60.0, 150, Expression(vibrato_depth=0, preparation=0, overshoot=0, **QUIET),
                    DT, moves={20: (62.0, 0.08)})  # fmt: skip
    assert np.all(np.diff(plain) >= 0) and plain.max() == 62.0
    k = round(0.08 / DT)
    assert 60.0 < plain[20 + k // 2] < 62.0 and np.all(plain[20 + k :] == 62.0)  # 80 ms


@pytest.mark.parametrize(
    "on,off",
    [
        (dict(vibrato_depth=35.0, vibrato_rate=5.7), dict(vibrato_depth=0.0)),
        (dict(vibrato_depth=35.0, vibrato_rate=5.7), dict(vibrato_rate=0.0)),
        (dict(fluctuation=4.0), dict(fluctuation=0.0)),
        (dict(overshoot=1.0), dict(overshoot=0.0)),
        (dict(preparation=1.0), dict(preparation=0.0)),
    ],
)
def test_a_zero_switches_each_part_off(on, off):
    base = Expression.off()
    moves = {30: (62.0, 0.0)}  # a jump, no portamento: the plain note is a step
    step = np.where(np.arange(200) < 30, 60.0, 62.0)
    assert np.array_equal(contour(60.0, 200, base, DT, moves=moves), step)
    with_part = contour(60.0, 200, Expression(**{**vars(base), **on}), DT, moves=moves)
    without = contour(60.0, 200, Expression(**{**vars(base), **on, **off}), DT, moves=moves)
    assert np.abs(with_part - step).max() > 0.01
    assert np.array_equal(without, step)  # exactly the note's pitch


def test_all_off_is_the_note_pitch_exactly():
    assert np.array_equal(contour(61.3, 300, Expression.off(), DT), np.full(300, 61.3))


def test_fine_fluctuation_is_slow_small_and_reproducible():
    e = Expression(vibrato_depth=0.0, overshoot=0, preparation=0, fluctuation=4.0)
    a = contour(60.0, 20000, e, DT, seed=7)
    assert np.array_equal(a, contour(60.0, 20000, e, DT, seed=7))  # the same render each time
    assert not np.array_equal(a, contour(60.0, 20000, e, DT, seed=8))
    c = cents(a, 60.0)
    assert abs(c.std() - 4.0) < 0.5 and abs(c.mean()) < 0.5
    spec = np.abs(np.fft.rfft(c)) ** 2
    f = np.fft.rfftfreq(c.size, DT)
    assert spec[f > 20].sum() < 0.05 * spec.sum()  # low-passed: a wobble, not jitter
    # a live change of the settings does not change the noise drawn
    b = contour(60.0, 20000, Expression(vibrato_depth=0.0, fluctuation=0.0), DT, seed=7)
    assert np.all(b == 60.0)


def test_score_notes_get_a_quarter_delay_and_short_ones_no_vibrato():
    assert for_score_note({"dur": 2.0}) == {"vibrato_delay": 0.5}
    assert for_score_note({"dur": 0.4}) == {"vibrato_delay": 0.1, "vibrato_depth": 0.0}
    own = for_score_note({"dur": 0.4, "vibrato_depth": 50, "vibrato_delay": 0.05, "breath": 0.3})
    assert own == {"vibrato_depth": 50.0, "vibrato_delay": 0.05, "breath": 0.3}


def test_tilt_is_db_per_octave_around_1khz():
    centres = np.array([500.0, 1000.0, 2000.0, 4000.0])
    m = np.zeros((4, 3))
    assert tilt(m, 0.0, centres) is m
    db = tilt(m, 6.0, centres)[:, 0] * 20 / np.log(10)
    np.testing.assert_allclose(db, [-6.0, 0.0, 6.0, 12.0], atol=1e-9)
    e = Expression()
    assert e.tilt_db(100) == 0.0 and e.tilt_db(127) > 0 > e.tilt_db(40)


def test_every_setting_by_osc_mqtt_score_and_config():
    for name in ("vibrato_depth", "vibrato_rate", "vibrato_delay", "portamento", "overshoot",
                 "fluctuation", "breath", "brightness", "consonant"):  # fmt: skip
        assert P.command(f"/param/{name}", [0.0]) == P.Param(name, 0.0)
        assert P.command(f"/ne/{name}", [3, 0.0]) == P.NoteParam(3, name, 0.0)
        assert P.mqtt_control(json.dumps({"param": name, "value": 0}).encode()) == P.Param(
            name, 0.0
        )
    with pytest.raises(P.ProtocolError, match="outside"):
        P.command("/ne/breath", [3, 1.5])
    assert P.command("/param/consonant", [-1.5]) == P.Param("consonant", -1.5)
    for bad in ("/param/consonant", "/ne/consonant"):
        with pytest.raises(P.ProtocolError, match="outside"):
            P.command(bad, [3.0] if bad.startswith("/param") else [3, 3.0])
    sing = P.mqtt_sing(b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "vibrato_depth": 0,'
                       b' "breath": 0.4, "portamento": 0.1}]}')  # fmt: skip
    n = sing.notes[0]
    assert n["vibrato_depth"] == 0.0 and n["breath"] == 0.4 and n["portamento"] == 0.1
    assert "overshoot" not in n
    with pytest.raises(P.ProtocolError, match=r'note 0: "breath" must be a number 0\.\.1'):
        P.mqtt_sing(b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "breath": 2}]}')
    with pytest.raises(P.ProtocolError, match=r'note 0: "consonant" must be a number -2\.\.2'):
        P.mqtt_sing(b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "consonant": 3}]}')
    n = P.mqtt_sing(b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "consonant": 0.5}]}')
    assert for_score_note(n.notes[0])["consonant"] == 0.5
    assert Expression.of({"consonant": 1.0}, None).consonant == 1.0  # live, then own
    assert Expression.of({"consonant": 1.0}, {"consonant": -1}).consonant == -1.0
    assert Expression().consonant == Expression.off().consonant == 0.0  # 0: as spoken
    cfg = config.load()
    defaults = Expression()
    for k, v in cfg.singing.params().items():
        if k != "seed":
            assert getattr(defaults, k) == v, k  # the packaged config documents the defaults


# --- through the real voice -------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer():
    torch.set_num_threads(1)
    return Renderer(_voice.packaged(dsp.DEFAULT), dsp.DspVocoder(dsp.DEFAULT, "rtisi"), 2)


def _held_cents(renderer, pitch, params):
    n = Note(renderer, pitch, 100, "la", params)
    y = np.concatenate([n.render(256) for _ in range(220)])  # 2.6 s
    f0, voiced = dsp.yin(y[int(1.0 * 22050) :], dsp.DEFAULT, fmin=80, fmax=600)
    hz = 440 * 2 ** ((pitch - 69) / 12)
    return 1200 * np.log2(f0[voiced] / hz), voiced.mean()


def test_a_held_note_sings_vibrato_by_default_and_none_at_depth_0(renderer):
    wob, v1 = _held_cents(renderer, 57, {})  # the defaults: vibrato on
    flat, v2 = _held_cents(renderer, 57, {"vibrato_depth": 0.0})
    assert v1 > 0.8 and v2 > 0.8
    assert 15 < wob.std() * np.sqrt(2) < 60  # about the 35 cents asked
    assert abs(peak_hz(wob, 256 / 22050) - 5.7) < 0.4
    assert flat.std() < 8 and abs(np.median(flat)) < 50


def test_a_notes_own_settings_beat_the_live_ones(renderer):
    live = {"vibrato_depth": 35.0, "breath": 0.1}
    n = Note(renderer, 57, 127, "la", live, expression={"vibrato_depth": 0.0, "breath": 0.6})
    assert n.expression.vibrato_depth == 0.0 and n.breath == 0.6 and n.brightness > 0
    n.own["breath"] = 0.2  # what /ne/breath does
    n.render(2048)
    assert n.breath == 0.2
    live["vibrato_depth"] = 10.0  # /param/vibrato_depth reaches held notes without their own
    assert Note(renderer, 57, 100, "la", live).expression.vibrato_depth == 10.0


def test_consonant_stretches_the_onset_consonants_only(renderer):
    voice = renderer.voice
    base = voice.syllable("star")  # s t | aa | r
    same = voice.syllable("star", consonant=1.0)  # 1: exactly as it was
    assert np.array_equal(same.up, base.up) and np.array_equal(same.controls, base.controls)
    assert same[2:] == base[2:]  # onset, hold, coda
    long, short = voice.syllable("star", consonant=2.0), voice.syllable("star", consonant=0.5)
    assert short.onset < base.onset < long.onset
    assert abs(long.onset - 2 * base.onset) <= 2 and short.onset >= 2  # each phone >= 1 frame
    for s in (long, short):  # the vowel and the coda as they were
        assert s.hold - s.onset == base.hold - base.onset
        assert s.coda - s.onset == base.coda - base.onset
        assert len(s.up) - s.coda == len(base.up) - base.coda
        assert np.array_equal(s.up[s.onset :], base.up[base.onset :])
        assert np.array_equal(s.controls[s.onset :], base.controls[base.onset :])
        assert len(s.controls) == len(s.up)
    # in a phrase: the context's phones are not the syllable's, and are not stretched
    ctx = (("dh", "ax"), ("l", "ay"))
    a, b = voice.syllable("star", *ctx), voice.syllable("star", *ctx, consonant=2.0)
    assert b.onset > a.onset and b.coda - b.onset == a.coda - a.onset


def test_a_longer_consonant_leads_the_beat_by_more_and_the_vowel_lands_on_it(renderer):
    hop = renderer.hop
    own = {"seed": 1}
    plain = Note(renderer, 57, 100, "star", expression=own)
    long = Note(renderer, 57, 100, "star", expression={**own, "consonant": 1.0})
    short = Note(renderer, 57, 100, "star", expression={**own, "consonant": -1.0})
    assert short.lead < plain.lead < long.lead
    assert abs(long.lead - 2 * plain.lead) <= 2 * hop
    assert long.tail == plain.tail == short.tail  # the coda as spoken
    live = Note(renderer, 57, 100, "star", {"consonant": 1.0}, expression=own)  # /param
    assert live.lead == long.lead
    # a score: each note starts its lead before its beat, so its vowel lands on the beat
    notes = [{"pitch": 57, "start": 0.5, "dur": 0.5, "lyric": "star", "velocity": 100},
             {"pitch": 59, "start": 1.5, "dur": 0.5, "lyric": "star", "velocity": 100}]  # fmt: skip
    rate, groups = renderer.rate, score.phrases(notes)
    assert groups == [[0], [1]]  # a rest between: two phrases
    leads = []
    for owns in ([own, own], [{**own, "consonant": 1.0}, {**own, "consonant": -1.0}]):
        snds = [Phrase(renderer, [notes[i]], [("s", "t", "aa", "r")], None, [dict(owns[i])],
                       [False]) for i in range(2)]  # fmt: skip
        phrased = list(zip(groups, snds, strict=True))
        ons = [(pos, j) for pos, j in score.events(notes, phrased, 0, 0, rate)
               if isinstance(j.cmd, P.NoteOn)]  # fmt: skip
        for (pos, j), n, snd in zip(ons, notes, snds, strict=True):
            assert j.skip == 0 and pos + snd.lead == int(n["start"] * rate)
        leads.append([snd.lead for snd in snds])
    assert leads[0][0] == leads[0][1] and leads[1][1] < leads[0][0] < leads[1][0]
