"""The daemon's voices: batched steps equal solo ones, notes hold and release, caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dsp
from daemon import score
from daemon.synth import Note, Phrase, Renderer, Speech, fill
from model import retiming
from model import voice as _voice


@pytest.fixture(scope="module")
def renderer():
    torch.set_num_threads(1)
    return Renderer(_voice.packaged(dsp.DEFAULT), dsp.DspVocoder(dsp.DEFAULT, "rtisi"), 2)


def test_batched_generator_steps_equal_solo_ones(renderer):
    together = [Note(renderer, 60 + i, 100, "la") for i in range(3)]
    alone = [Note(renderer, 60 + i, 100, "la") for i in range(3)]
    for _ in range(20):
        fill(together, 256)
        for v in together + alone:
            v.render(256)
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a.gen_state.hidden - b.gen_state.hidden).max() <= 1e-4
        assert a.contour.frame == b.contour.frame and a.i == b.i


def test_sung_notes_use_the_voices_singing_model_and_batch_beside_speech(renderer):
    """The packaged voice sings with its singing model through the harmonic vocoder (speech
    keeps the acoustic one; ``sings=False`` or another vocoder: the acoustic one sings); a
    speech and notes stepped together, each model's voices in one batch, equal each stepped
    alone."""
    from model import registry

    v = renderer.voice
    assert v.singer is not None and renderer.singing is renderer  # RTISI-LA: the speech model
    renderer = Renderer(v, registry.load("harmonic", dsp.DEFAULT), 2)
    assert renderer.singing.voice is v.singer and renderer.singing.singing is renderer.singing
    assert renderer.singing.pool is renderer.pool
    plain = Renderer(v, renderer.vocoder, 2, sings=False)
    n, m, s = Note(renderer, 60, 100, "la"), Note(plain, 60, 100, "la"), Speech(renderer, "Hi.")
    assert n.r is renderer.singing and m.r is plain and s.r is renderer
    a = np.concatenate([n.render(256) for _ in range(40)])
    b = np.concatenate([m.render(256) for _ in range(40)])
    assert np.abs(a - b).max() > 0.01  # another model sang

    def voices():
        notes = [Note(renderer, p, 100, "la") for p in (60, 64)]
        return [Speech(renderer, "Good morning."), *notes]

    together, alone = voices(), voices()
    for _ in range(30):
        fill(together, 256)
        outs = [(x.render(256), y.render(256)) for x, y in zip(together, alone, strict=True)]
        for x, y in outs:
            assert len(x) == len(y) and np.abs(x - y).max() < 1e-3


def test_a_note_holds_until_released_then_ends(renderer):
    n = Note(renderer, 57, 100, "la")
    held = np.concatenate([n.render(256) for _ in range(200)])  # 2.3 s
    assert not n.done and np.abs(held[-5000:]).max() > 0.01  # still sounding
    n.release()
    tail = [n.render(256) for _ in range(200)]
    assert n.done and sum(len(t) for t in tail) < 200 * 256
    # the held vowel's pitch follows the note: YIN on the sustain
    f0, voiced = dsp.yin(held[22050:], dsp.DEFAULT, fmin=80, fmax=600)
    midi = 69 + 12 * np.log2(np.median(f0[voiced]) / 440)
    assert abs(midi - 57) < 1.0, midi


def test_speech_ends_and_phrases_are_cached(renderer):
    s = Speech(renderer, "Good morning.")
    out = np.concatenate([s.render(256) for _ in range(400)])
    assert s.done and 0.4 * 22050 < len(out) < 3 * 22050
    assert renderer.sentence("Good morning.", 1.0)[0] is renderer.sentence("Good morning.", 1.0)[0]
    up, ctrl, onset, hold, coda = renderer.syllable("la")
    assert 0 < onset <= hold < coda <= len(up) and ctrl[hold, 1] == 1.0  # "l", then "aa"


def test_a_glide_moves_the_held_pitch(renderer):
    n = Note(renderer, 55, 100, "la")
    first = np.concatenate([n.render(256) for _ in range(60)])
    n.glide_to(62, 0.1)
    second = np.concatenate([n.render(256) for _ in range(80)])
    f1, v1 = dsp.yin(first[11025:], dsp.DEFAULT, fmin=80, fmax=600)
    f2, v2 = dsp.yin(second[11025:], dsp.DEFAULT, fmin=80, fmax=600)
    assert abs(12 * np.log2(np.median(f1[v1]) / np.median(f2[v2])) + 7) < 0.5  # 7 semitones up


def test_a_sung_phrase_puts_each_vowel_on_its_beat(renderer):
    """The phrase's phones re-timed onto the notes: each vowel starts on its note's beat (to
    a frame), onset consonants before it, the last coda ending with the last note; a melisma
    moves the pitch on its own beat; longer consonants lead by more."""
    v, frame = renderer.voice, renderer.hop / renderer.rate
    syls = [("dh", "ah"), ("m", "ao", "r"), ("n", "ih", "ng"), ("l", "ay", "t")]
    beats = [0.0, 0.3, 0.75, 1.05]
    lengths = [0.3, 0.45, 0.3, 0.6]
    timed = enumerate(zip(beats, lengths, strict=True))
    notes = [retiming.Note(b, d, 60, k) for k, (b, d) in timed]
    notes.append(retiming.Note(1.65, 0.5, 62, 3))  # a melisma: "light" held on
    s = v.sung(syls, notes)
    assert len(s.up) == len(s.controls)
    pos = s.up[:, -1]  # the position in the phone: 0 at each phone's first frame
    starts = np.flatnonzero(np.diff(pos, prepend=1.0) < 0)  # each phone's first frame
    firsts = [1 + sum(len(x) for x in syls[:k]) + next(i for i, p in enumerate(syls[k])
              if p in ("ah", "ao", "ih", "ay")) for k in range(len(syls))]  # fmt: skip
    for k, b in enumerate(beats):
        vowel = starts[firsts[k]]  # token 0 is the pause before the phrase
        assert abs(vowel - (s.lead + b / frame)) <= 1, (k, vowel, s.lead + b / frame)
        assert (s.controls[vowel : vowel + 3, 1] == 1.0).all()  # the vowel voiced
    assert abs(len(s.up) - 2 - (s.lead + 2.15 / frame)) <= 1  # the coda ends with the note
    assert s.changes[0] == 2 and s.changes == sorted(s.changes)  # the first phone: after the pause
    assert abs(s.changes[-1] - (s.lead + 1.65 / frame)) <= 1  # the melisma on its beat
    longer = v.sung(syls, notes, consonant=[2.0] * 4)
    assert longer.lead > s.lead


def test_a_score_is_sung_in_phrases_of_touching_notes():
    n = lambda t, d: {"start": t, "dur": d, "pitch": 60, "lyric": "la"}  # noqa: E731
    notes = [n(0.0, 0.5), n(0.5, 0.5), n(1.3, 0.4), n(1.7, 0.3), n(0.5, 1.0)]  # a chord's note
    assert score.phrases(notes) == [[0, 1], [4], [2, 3]]  # a rest ends one; a chord: its own


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_a_phrase_streams_the_same_whatever_the_chunk(renderer, chunk):
    """What the vocoder gets (log-mel and f0) is the same frame for frame whatever the chunk
    (to float rounding: RTISI-LA's phase would magnify even that, so the audio is not
    compared)."""
    notes = [{"pitch": 57 + i, "start": 0.3 * i, "dur": 0.3, "lyric": w, "velocity": 100}
             for i, w in enumerate(["the", "mor-", "ning", "_"])]  # fmt: skip
    phones = score.phones(notes)

    def sing(r):
        own = [{"seed": 3}, {}, {}, {}]
        p = Phrase(r, notes, phones, {}, own, score.melismas(notes))
        fed, given = [], p._voc_inputs
        p._voc_inputs = lambda y: fed.append(given(y)) or fed[-1]
        out = np.concatenate([p.render(256) for _ in range(200)])
        mel = np.concatenate([m for m, _ in fed], 1)
        return p, out, mel, np.concatenate([f for _, f in fed])

    ref_p, ref, ref_mel, ref_f0 = sing(renderer)
    p, out, mel, f0 = sing(Renderer(renderer.voice, renderer.vocoder, chunk))
    assert ref_p.done and p.done and len(out) == len(ref) > 22050
    assert mel.shape == ref_mel.shape and np.abs(mel - ref_mel).max() <= 1e-4
    np.testing.assert_allclose(f0, ref_f0, rtol=1e-9)
    assert p.lead == ref_p.lead > 0 and len(p.moves) == 3 and (f0 > 0).mean() > 0.6


@pytest.fixture(scope="module")
def harmonic_renderer():
    """The default voice through an untrained harmonic vocoder (the mel as the envelope):
    its pitch is the f0 it is given whatever its weights."""
    from model.harmonic import HarmonicNet
    from model.harmonic_vocoder import HarmonicVocoder

    torch.manual_seed(0)
    voc = HarmonicVocoder(HarmonicNet(channels=32, blocks=1).eval(), dsp.DEFAULT, {})
    return Renderer(_voice.packaged(dsp.DEFAULT), voc, 2)


@pytest.mark.parametrize("pitch", [48, 57, 69, 76])
def test_a_harmonic_vocoder_sings_the_notes_pitch_across_two_octaves(harmonic_renderer, pitch):
    """The note's own pitch, in tune, inside the generator's native range and beyond it
    (the mel warped to the note there, as the harmonic vocoder needs: it follows the mel's
    harmonics as well as the f0)."""
    n = Note(harmonic_renderer, pitch, 100, "la", {"vibrato_depth": 0.0})
    held = np.concatenate([n.render(256) for _ in range(120)])
    f0, voiced = dsp.yin(held[11025:], dsp.DEFAULT, fmin=60, fmax=1000)
    assert voiced.mean() > 0.9
    cents = 1200 * np.log2(np.median(f0[voiced]) / (440 * 2 ** ((pitch - 69) / 12)))
    assert abs(cents) < 5, cents


def test_speech_through_a_harmonic_vocoder_is_voiced_where_its_pitch_says(harmonic_renderer):
    s = Speech(harmonic_renderer, "Good morning, everyone.")
    out = np.concatenate([s.render(256) for _ in range(400)])
    assert s.done and np.abs(out).max() > 0.01
    f0 = s.f0[s.f0 > 0]
    got, voiced = dsp.yin(out, dsp.DEFAULT, fmin=60, fmax=1000)
    assert 0.3 < voiced.mean() < 0.95  # voiced speech with unvoiced stretches
    heard = np.median(got[voiced])
    assert abs(1200 * np.log2(heard / np.median(f0))) < 100  # the voice's own register


def test_a_note_sounds_harmonics_only_where_its_phone_and_the_pitch_head_are_voiced(
    harmonic_renderer,
):
    """The pitch head alone let harmonics into the consonants beside a vowel (a sung "s"
    heard as "t"): a note's f0 goes to the vocoder where both say voiced."""
    n = Note(harmonic_renderer, 60, 100, "sa")
    given = np.array([[261.6, 0.0, 1.0, 0.0], [261.6, 0.0, 1.0, 0.0], [261.6, 1.0, 1.0, 0.0],
                      [261.6, 1.0, 1.0, 0.0]])  # fmt: skip
    head = (np.full(4, 250.0), np.array([True, False, True, False]))
    np.testing.assert_array_equal(n._f0_heard(given, head), [0.0, 0.0, 261.6, 0.0])
    np.testing.assert_array_equal(n._f0_heard(given, None), [0.0, 0.0, 261.6, 261.6])


def test_speech_voicing_rules_keep_the_head_to_the_voiced_phones():
    """The head may voice the voiced phones and a frame either side; the "phones" rule
    voices the voiced phones whatever the head says; nothing else is voiced."""
    f0 = np.array([0, 0, 0, 100, 100, 0, 0, 0, 120, 0], float)
    h = _voice.HEAD_DECIDES
    assert _voice.voicing_allowed(f0).tolist() == [0, 0, h, h, h, h, 0, h, h, h]
    phones = _voice.voicing_allowed(f0, "phones")
    assert phones.tolist() == [0, 0, h, 1, 1, h, 0, h, 1, h]
    head = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 1], bool)
    assert _voice.heard_voicing(_voice.voicing_allowed(f0), head).tolist() == [
        0, 0, 0, 0, 1, 1, 0, 0, 0, 1]  # fmt: skip
    assert _voice.heard_voicing(phones, head).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="voicing rule must be one of"):
        _voice.voicing_allowed(f0, "always")


@pytest.mark.parametrize("rule", ["head", "phones"])
def test_speech_streamed_is_voiced_as_offline_and_only_near_voiced_phones(
    harmonic_renderer, monkeypatch, rule
):
    """The pitch head's voicing runs on into unvoiced consonants: speech sounds harmonics
    only where the voice's rule allows it; streamed as the daemon speaks, the vocoder gets
    the f0 that `say` (offline) gives it, under either rule."""
    v = harmonic_renderer.voice
    monkeypatch.setitem(v.header, "voicing", rule)
    text = "Sister, please sit still."
    s = Speech(harmonic_renderer, text)
    fed, given = [], s._voc_inputs
    s._voc_inputs = lambda y: fed.append(given(y)) or fed[-1]
    while not s.done:
        s.render(256)
    streamed = np.concatenate([f for _, f in fed])
    _, offline = v.mel_f0(text)
    assert len(streamed) == len(offline)
    np.testing.assert_array_equal(streamed > 0, offline > 0)
    np.testing.assert_allclose(streamed, offline, rtol=1e-3)
    _, control = v.speech(text)
    allowed = _voice.voicing_allowed(control, rule)
    assert not (offline[allowed == 0] > 0).any() and (offline > 0).mean() > 0.3
    if rule == "phones":
        assert (offline[allowed == 1] > 0).all()


def test_a_note_above_what_the_voice_can_sound_is_refused_and_bends_stay_below_nyquist(
    harmonic_renderer,
):
    """MIDI 127 is 12.5 kHz, past Nyquist at 22050 Hz: refused with what to send; a note
    bent past the top sounds at the top instead of failing the vocoder."""
    with pytest.raises(ValueError, match="send a pitch of 122 or lower"):
        Note(harmonic_renderer, 127.0, 90, "la")
    n = Note(harmonic_renderer, 122.0, 90, "la")
    n.bend = 12.0
    fed, given = [], n._voc_inputs
    n._voc_inputs = lambda y: fed.append(given(y)) or fed[-1]
    y = np.concatenate([n.render(512) for _ in range(20)])
    assert np.isfinite(y).all() and not n.ended
    f0 = np.concatenate([f for _, f in fed])
    assert f0.max() == pytest.approx(Note.TOP * harmonic_renderer.rate)
