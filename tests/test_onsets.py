"""Immediate note-ons keep their spacing: each is placed at its arrival plus a fixed latency
that lands past what is rendered, on a clock that does not take the callbacks' jitter.
Timetagged note-ons start their onset consonants before the timetag, so that the vowel
lands on it (cut short where the timetag leaves too little room)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

import dsp
from bench.bench_daemon import ONSET_SLIP, analyse, answers, send_notes
from daemon import protocol as P
from daemon import score
from daemon.jobs import Job
from daemon.protocol import NoteOff
from daemon.runs import LivePhrase
from daemon.scheduler import RAMP, Scheduler
from daemon.sink import NullSink, OfflineSink, PhaseLine
from daemon.synth import Note, Phrase, Renderer
from model import voice as _voice

RATE = 22050
ROOT = Path(__file__).parents[1]


class _Lead(NullSink):
    lead = 0.03  # like the device sink: played() 30 ms ahead of position_at(now)


def test_the_fixed_latency_lands_past_what_is_rendered():
    """An immediate event arriving when the worker is as far ahead as it goes is not late:
    the fixed latency is raised above buffer_ms + a block + the sink's lead (and said)."""
    sink = _Lead(RATE)
    s = Scheduler(SimpleNamespace(rate=RATE), sink, latency_ms=10.0, buffer_ms=25.0)
    try:
        assert s.latency >= s.ahead + s.block + int(sink.lead * RATE) + int(s.MARGIN * RATE)
        sink.start()
        now = time.monotonic()
        s.pos = sink.played() + int(sink.lead * RATE) + s.ahead + s.block  # the most rendered
        s.submit(Job(NoteOff(64.0, 1), None, "test", now - 0.004))  # 4 ms on its way
        s._drain()
        assert s.late == 0 and s.events[0][0] >= s.pos
    finally:
        s.prep.shutdown()


def _callbacks(seconds: float, t0: float = 0.0, read: int = 0, seed: int = 0):
    """A PortAudio stream's callbacks on a PulseAudio null sink as traced: 110-sample
    blocks, late by up to a millisecond (a few by 5), two at once every sixth. Yields (time,
    samples taken before it); the stream's phase is ``t0``."""
    rng = np.random.default_rng(seed)
    for i in range(int(seconds * RATE / 110)):
        due = t0 + read / RATE
        late = rng.uniform(0, 0.001) + (0.005 if i % 6 == 0 or rng.random() < 0.02 else 0)
        yield due + late, read
        read += 110


def _burst_after_a_stall(line: PhaseLine, bursts: int = 1) -> list[float]:
    """2 s of callbacks on phase 0, then ``bursts`` times: a 25 ms stall, six blocks taken at
    once (the last one 4.8 ms ahead of the stream), callbacks on phase 0 again (0.3 s, the
    last time 1 s): the value's error after each burst."""
    for now, read in _callbacks(2.0):
        line.add(now, now - read / RATE)
    errors = []
    for k in range(bursts):
        now = (read + 6 * 110) / RATE - 0.0048
        for _ in range(6):
            read += 110
            line.add(now, now - read / RATE)
        for now, taken in _callbacks(1.0 if k == bursts - 1 else 0.3, read=read + 110, seed=k + 1):
            line.add(now, now - taken / RATE)
            errors.append(line.value)
        read = taken
    return errors


def test_the_device_clock_ignores_a_burst_that_runs_ahead_of_the_stream():
    """A catch-up burst after a short stall (one block ahead of the stream, the device
    itself unmoved) does not move the clock: a note placed in the second after it would
    have sounded 4.8 ms late (seen on PulseAudio under load)."""
    assert np.abs(_burst_after_a_stall(PhaseLine())).max() < 0.0012
    least = PhaseLine()
    least.K, least.Q = 1, 0.0  # the least phase, as the clock was before: taken in by the burst
    assert np.abs(_burst_after_a_stall(least)).max() > 0.004
    # several bursts in one window: the 4th least (the clock until 2026-12-03) is taken in
    assert np.abs(_burst_after_a_stall(PhaseLine(), bursts=4)).max() < 0.0012
    fourth = PhaseLine()
    fourth.Q = 0.0
    assert np.abs(_burst_after_a_stall(fourth, bursts=4)).max() > 0.004


def test_the_device_clock_follows_a_device_that_moved_later_and_one_that_drifts():
    """Every callback 10 ms later from some moment (a device that ran dry unreported): the
    clock takes the new phase within RECENT s and a few callbacks. A device 300 ppm slow:
    followed to a tenth of a millisecond."""
    line = PhaseLine()
    for now, read in _callbacks(2.0):
        line.add(now, now - read / RATE)
    last = now
    moved = [now for now, read in _callbacks(0.5, 0.010, read) if line.add(now, now - read / RATE)]
    assert moved and abs(line.value - 0.010) < 0.0012
    assert line.RECENT <= moved[0] - last < line.RECENT + 0.02  # RECENT s of them, no more
    slow = PhaseLine()
    for now, read in _callbacks(10.0, seed=2):
        now = now * (1 + 300e-6)
        slow.add(now, now - read / RATE)
    assert abs(slow.value - (now - read / RATE)) < 0.0012  # the latest callback's, drift kept


def test_an_osc_arrival_is_when_the_kernel_received_it_not_when_the_loop_read_it():
    """An immediate /mnote that waits 80 ms for a busy event loop keeps the time it came
    (SO_TIMESTAMPNS): a loop held up by the CPU must not move a note later."""
    import asyncio

    from daemon.config import load
    from daemon.osc import OscServer

    jobs: list[Job] = []

    async def run() -> tuple[float, float]:
        srv = OscServer(load().osc, submit=jobs.append, busy=lambda: None, status=dict,
                        switch_voice=None)  # fmt: skip
        addr = srv.open(asyncio.get_running_loop(), "127.0.0.1", 0)
        try:
            assert srv.stamped  # Linux x86/arm: the kernel stamps every datagram
            # ... once its receive stamps are on: the first socket to ask switches them on in
            # deferred work, and a datagram before that is stamped when it is read
            await asyncio.sleep(0.05)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                sent = time.monotonic()
                c.sendto(P.reply("/mnote", 64.0, 100.0, 1), addr)
                time.sleep(0.08)  # the loop is busy: the reader cannot run yet
                read_from = time.monotonic()
                for _ in range(100):
                    await asyncio.sleep(0.005)
                    if jobs:
                        break
            return sent, read_from
        finally:
            srv.close()

    sent, read_from = asyncio.run(run())
    assert len(jobs) == 1 and isinstance(jobs[0].cmd, P.NoteOn), jobs
    assert abs(jobs[0].arrival - sent) < 0.01 < read_from - jobs[0].arrival, jobs[0].arrival - sent


@pytest.mark.audio
def test_immediate_note_ons_on_pulseaudio_keep_their_spacing(pulse_null_sink, tmp_path):
    """40 note-ons 0.3-0.5 s apart to `melgand serve --sink sounddevice` on the null sink,
    recorded from its monitor: every onset gap equals the sending gap within 3 ms (a block
    is 11.6 ms: an event moved to the next block fails this)."""
    env = {**pulse_null_sink, "PYTHONPATH": str(ROOT)}
    rec = tmp_path / "monitor.wav"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec_cmd = ["parecord", "--device=melgand_test.monitor", "--channels=1", f"--rate={RATE}",
               "--file-format=wav", str(rec)]  # fmt: skip
    parec = subprocess.Popen(rec_cmd, env=env)
    log = tmp_path / "stderr"
    cmd = [sys.executable, "-m", "daemon.cli", "serve", "--sink", "sounddevice", "--osc",
           f"127.0.0.1:{port}", "--mqtt", "off", "--set", "daemon.greeting=''"]  # fmt: skip
    with log.open("w") as f:
        p = subprocess.Popen(cmd, stderr=f, env=env, cwd=ROOT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dest = ("127.0.0.1", port)
    try:
        assert answers(sock, dest, p, 60.0), log.read_text()
        time.sleep(3.0)  # past the stall of a newly opened PulseAudio stream
        sent, took = send_notes(sock, dest, 41, seed=1)  # a lead-in note, then 40
        time.sleep(1.0)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
        parec.send_signal(signal.SIGINT)
        parec.wait(10)
        sock.close()
    assert rc == 0, log.read_text()
    y, sr = sf.read(rec, dtype="float32")
    assert sr == RATE
    r = analyse(y, RATE, sent, took)
    text = log.read_text()
    # a device stall (an underrun on a busy CPU) drops ~2 s of sound, and a busy CPU may
    # hold the sender up between its clock and sendto: those notes are not compared, but
    # enough must be (the old clock slipped a block on more than half of them)
    assert r["good"].sum() >= 12, (r["found"].sum(), r["cut"].sum(), r["unsure"].sum(),
                                   text[-2000:])  # fmt: skip
    err = r["err"][r["good"]]
    assert np.abs(err).max() <= ONSET_SLIP, np.round(err * 1000, 2)
    assert "late by" not in text


class _Tape(OfflineSink):
    """Rendered as fast as asked, on a clock: timetags become sample positions from now."""

    def __init__(self, rate: int):
        super().__init__(rate)
        self.t0 = time.monotonic()

    def position_at(self, t: float) -> float:
        return (t - self.t0) * self.rate

    def unix_at(self, pos: int) -> float:
        """The unix time of sample ``pos``."""
        return time.time() + (pos - self.position_at(time.monotonic())) / self.rate


@pytest.fixture(scope="module")
def renderer():
    import torch

    torch.set_num_threads(1)
    return Renderer(_voice.packaged(dsp.DEFAULT), dsp.DspVocoder(dsp.DEFAULT, "rtisi"), 2)


def _live(renderer):
    """A scheduler on a tape, and where each voice started (``(sample, job)`` by its go)."""
    starts = []

    def on_event(kind, job, voice=None, **kw):
        if kind == "go" and isinstance(job.cmd, P.NoteOn):
            starts.append((s.pos + voice.offset, voice, job))

    s = Scheduler(renderer, _Tape(renderer.rate), on_event=on_event)
    return s, starts


def _timed(s, at_pos: int, *cmds) -> list[Job]:
    """A bundle timetagged at sample ``at_pos``: its commands submitted, their voices made."""
    at = s.sink.unix_at(at_pos)
    jobs = [Job(c, None, "test", at=at) for c in cmds]
    for j in jobs:
        s.submit(j)
    for j in jobs:
        if j.ready is not None:
            j.ready.result()
    s._drain()
    return jobs


def _render_to(s, pos: int) -> None:
    while s.pos < pos:
        s._render_block()


def _sung(renderer, s, notes) -> LivePhrase:
    """The voice a run of timed notes ``(pitch, lyric, start s, dur s or None)`` gets."""
    return LivePhrase(renderer, [{"id": i, "pitch": p, "velocity": 100.0, "start": t, "dur": d,
                                  "phones": score.phones([{"lyric": w}])[0], "melisma": False}
                                 for i, (p, w, t, d) in enumerate(notes)], s.params)  # fmt: skip


def test_a_timetagged_note_starts_its_consonants_early_so_its_vowel_lands_on_the_tag(renderer):
    """/lyric "star" + /mnote in a bundle 0.5 s ahead: its first sample ("s") is its lead
    before the timetag, the vowel on it; the audio is the note's own, to the sample."""
    s, starts = _live(renderer)
    try:
        _, on = _timed(s, RATE // 2, P.Lyric("star", 1), P.NoteOn(57.0, 100.0, 1))
        beat, lead = on.pos, on.sound.lead
        assert abs(beat - RATE // 2) <= 2 and lead > RATE // 20  # "st": some 50 ms or more
        _timed(s, beat + int(0.4 * RATE), P.NoteOff(57.0, 1))
        on.run.update()  # the plan with the note's end, as the preparation thread makes it
        ref = _sung(renderer, s, [(57.0, "star", 0.0, on.run.notes[0]["dur"])])
        ref = ref.render(lead + RATE // 4)
        _render_to(s, beat + RATE // 4)
        y = s.sink.audio()
        assert [(at, j) for at, _, j in starts] == [(beat - lead, on)]  # its lead before it
        assert on.skip == 0 and s.late == 0
        assert np.abs(y[: beat - lead]).max() == 0  # nothing before its consonants
        first = int(np.flatnonzero(ref)[0])
        assert int(np.flatnonzero(y)[0]) == beat - lead + first
        np.testing.assert_allclose(y[beat - lead : beat + RATE // 4], ref, atol=1e-4)
    finally:
        s.prep.shutdown()


def test_a_timetag_too_close_for_the_consonants_cuts_them_and_keeps_the_vowel_on_it(renderer):
    """The timetag half a lead past what is rendered: the note starts at once, its first
    consonant samples cut (faded in), and its vowel's first sample is on the timetag."""
    s, starts = _live(renderer)
    try:
        lead = _sung(renderer, s, [(57.0, "star", 0.0, None)]).lead
        _render_to(s, RATE // 4)
        now = s.pos
        _, on = _timed(s, now + lead // 2, P.Lyric("star", 1), P.NoteOn(57.0, 100.0, 1))
        beat = on.pos
        assert on.sound.lead == lead and now < beat < now + lead
        ref = _sung(renderer, s, [(57.0, "star", 0.0, None)]).render(lead + RATE // 4)
        _render_to(s, beat + RATE // 4)
        y = s.sink.audio()
        assert [(at, j) for at, _, j in starts] == [(now, on)]  # at once, not late
        assert s.late == 0 and on.skip == now - (beat - lead) > 0  # the consonants' head cut
        assert np.abs(y[:now]).max() == 0
        cut = ref[on.skip : on.skip + beat + RATE // 4 - now]
        n = len(RAMP)
        np.testing.assert_allclose(y[now : now + n], cut[:n] * RAMP, atol=1e-4)  # faded in
        np.testing.assert_allclose(y[now + n : beat + RATE // 4], cut[n:], atol=1e-4)
        # the vowel's first sample: ref[lead], on the timetag
        assert now + (lead - on.skip) == beat
    finally:
        s.prep.shutdown()


def test_touching_timed_notes_are_sung_as_one_phrase_by_one_voice(renderer):
    """Timed notes sent ahead, as a DAW sends them (each note-off at its note's end, the next
    note-on on it): one voice sings them as a score's phrase, its plan the score's; each note
    is heard to start and end; a rest starts a new phrase."""
    s, starts = _live(renderer)
    events = []
    hook = s.on_event
    s.on_event = lambda kind, job, **kw: (events.append((kind, job)), hook(kind, job, **kw))
    try:
        t0, words, step = s.pos + RATE // 2, ["the", "mor-", "ning", "light"], int(0.3 * RATE)
        ons = []
        for i, w in enumerate(words):
            ons.append(_timed(s, t0 + i * step, P.Lyric(w, i), P.NoteOn(60.0 + i, 90.0, i))[1])
            _timed(s, t0 + (i + 1) * step, P.NoteOff(60.0 + i, i))
        run = ons[0].run
        assert all(j.run is run for j in ons) and [j.joins for j in ons] == [0, 1, 1, 1]
        assert [round(n["dur"], 3) for n in run.notes] == [0.3] * 4
        later = _timed(s, t0 + 5 * step, P.Lyric("la", 9), P.NoteOn(64.0, 90.0, 9))[1]
        assert later.run is not run and not later.joins  # after a rest: a phrase of its own
        run.update()
        notes = [{"pitch": 60.0 + i, "start": 0.3 * i, "dur": 0.3, "lyric": w, "velocity": 90.0}
                 for i, w in enumerate(words)]  # fmt: skip
        plan, moves = Phrase._plan(renderer, notes, score.phones(notes), s.params, [{}] * 4,
                                   [False] * 4)  # fmt: skip
        _render_to(s, t0 + 4 * step)
        v = run.voice
        assert v.version == run.version and np.array_equal(v.up, plan.up)
        assert np.array_equal(v.ctrl, plan.controls) and [m[0] for m in v.moves] == [
            m[0] for m in moves
        ]
        voice = next(a for _, a, j in starts if j is ons[0])
        assert [a for _, a, j in starts if j in ons] == [voice] * 4  # one voice, four notes
        assert v.target == 63.0 and voice.key == (3, 63.0)
        _timed(s, s.pos + s.block, P.NoteParam(3, "vibrato_depth", 7.0))  # /ne/* reaches it
        _render_to(s, s.pos + 2 * s.block)
        assert v.own["vibrato_depth"] == 7.0
        _render_to(s, t0 + 5 * step)
        ended = [j for kind, j in events if kind == "end"]
        assert all(j in ended for j in ons) and v.done
    finally:
        s.prep.shutdown()


def test_a_note_off_too_late_for_its_coda_starts_the_coda_now_and_all_notes_off_stops(renderer):
    """A timed note whose note-off comes only when its vowel should already be over: the
    vowel is held to where the voice is, then the coda is sung, nothing cut; a held run stops
    at all-notes-off."""
    s, _ = _live(renderer)
    try:
        t0 = s.pos + RATE // 4
        on = _timed(s, t0, P.Lyric("star", 1), P.NoteOn(57.0, 100.0, 1))[1]
        _render_to(s, t0 + RATE // 2)  # open: the vowel held on
        v = on.run.voice
        assert v.hold_at is not None and not v.done
        sung = v.clock
        _timed(s, t0 + RATE // 10, P.NoteOff(57.0, 1))  # 0.1 s after the beat: long past
        on.run.update()
        _render_to(s, s.pos + s.block)
        assert v.hold_at is None and v.plan.ends[-1] >= sung  # the vowel ends where it was
        _render_to(s, s.pos + RATE // 2)
        assert v.done and not s.voices
        again = _timed(s, s.pos + RATE // 4, P.Lyric("la", 2), P.NoteOn(57.0, 100.0, 2))[1]
        _render_to(s, s.pos + RATE // 2)
        assert not again.run.voice.done
        _timed(s, s.pos + RATE // 10, P.Simple("allnotesoff"))
        _render_to(s, s.pos + RATE // 4)
        assert again.run.voice.done and not s.voices
    finally:
        s.prep.shutdown()


def test_legato_glides_at_the_beat_and_a_released_note_lets_the_next_start_early(renderer):
    """/param/legato 1: a timed note-on while a note is held glides that voice at its beat
    (no new voice, no early start); one whose held note is released before it (in its
    bundle) starts a new voice, its consonants ahead of the beat."""
    s, starts = _live(renderer)
    try:
        _timed(s, 0, P.Param("legato", 1.0))
        _timed(s, RATE // 4, P.Lyric("la", 1), P.NoteOn(57.0, 100.0, 1))
        t2 = RATE // 4 + RATE // 2
        _timed(s, t2, P.Lyric("star", 2), P.NoteOn(60.0, 100.0, 2))
        _render_to(s, t2 - s.block)
        ((_, held, _),) = starts
        assert held.sound.target == 57.0
        _render_to(s, t2 + s.block)
        assert len(starts) == 2 and starts[1][1] is held and held.sound.target == 60.0
        assert len(s.voices) == 1 and held.key == (2, 60.0)
        t3 = t2 + RATE // 2
        _, _, third = _timed(s, t3, P.NoteOff(None, 2), P.Lyric("star", 3),
                             P.NoteOn(62.0, 100.0, 3))  # fmt: skip
        _render_to(s, t3 + s.block)
        at, v, j = starts[-1]
        assert j is third and v is not held and at == t3 - third.sound.lead
        assert held.sound.released and not v.sound.released
    finally:
        s.prep.shutdown()


def test_a_timed_note_whose_voice_is_late_still_has_its_vowel_on_the_tag(renderer):
    """Its voice is made only after its consonants should have started: it starts then, in
    the next block, their head cut, its vowel still on the timetag."""
    s, starts = _live(renderer)
    try:
        note = Note(renderer, 57.0, 100.0, "star", s.params)
        beat = RATE // 2
        job = Job(P.NoteOn(57.0, 100.0, 1), None, "test", at=s.sink.unix_at(beat), sound=note,
                  ready=Future())  # fmt: skip
        s.inbox.put(job)
        s._drain()
        _render_to(s, beat - note.lead // 2)
        assert not starts
        job.ready.set_result(None)
        now = s.pos
        s._render_block()
        assert [(at, j) for at, _, j in starts] == [(now, job)]
        assert job.skip == now - (job.pos - note.lead) > 0 and s.late == 0
    finally:
        s.prep.shutdown()


def test_a_line_of_lyrics_gives_the_next_notes_a_syllable_each_with_its_neighbours(renderer):
    """/lyrics "the mor- ning light": the next notes sing "the", "mor", "ning", "light",
    each encoded with the syllable after it (known at note-on); a note's own /lyric comes
    first and leaves the line; a new line replaces the rest; then "la" again."""
    s, _ = _live(renderer)
    try:
        phones = [tuple(renderer.phones_of(w)) for w in ("the", "light")]
        s.submit(Job(P.Lyrics("the mor- ning light"), None, "test"))
        line = list(s.line)
        assert len(line) == 4 and line[0] == phones[0] and line[3] == phones[1]
        assert line[1] + line[2] == tuple(renderer.phones_of("morning"))
        jobs = []
        for i, lyric in enumerate([None, None, "star", None, None]):
            if lyric:
                s.submit(Job(P.Lyric(lyric, i), None, "test"))
            jobs.append(Job(P.NoteOn(60.0, 100.0, i), None, "test"))
            s.submit(jobs[-1])
        assert [j.lyric for j in jobs] == [line[0], line[1], "star", line[2], line[3]]
        assert jobs[0].context[1] == line[1] and jobs[1].context[1] == line[2]
        assert jobs[4].context[1] == ()  # the line's end
        s.submit(Job(P.Lyrics("sea"), None, "test"))
        s.submit(Job(P.Lyrics("oh my"), None, "test"))
        last = [Job(P.NoteOn(62.0, 100.0, 9 + k), None, "test") for k in range(3)]
        for j in last:
            s.submit(j)
        assert [j.lyric for j in last] == [tuple(renderer.phones_of("oh")),
                                           tuple(renderer.phones_of("my")), "la"]  # fmt: skip
        for j in jobs + last:
            j.ready.result()
            assert j.sound is not None
    finally:
        s.prep.shutdown()
