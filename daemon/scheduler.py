"""The audio clock, the job queue and the voices: a worker thread that renders ahead.

Commands arrive from the event loop (``submit``, thread-safe) with their arrival time and,
for OSC bundles and MQTT ``at``, a wanted unix time. Each becomes an event at a sample
position on the sink's clock: a timed one at its time, an immediate one at its arrival plus
``latency_ms``, so that a steady stream of commands sounds at the same spacing; one whose
position has already been rendered runs at once and is counted late. The worker renders
blocks until it is ``buffer_ms`` ahead of what the sink has played: events inside a block
start voices at their exact sample; voices render themselves (model + vocoder, streaming)
and are summed, scaled by the volume and limited.

A timed note-on is sung as a score's notes are (:func:`daemon.score.events`): once its voice
is made it is placed at the start of its onset consonants, their length (the note's
``lead``) before its time, so that its vowel lands on that time; where that start has
already been rendered it starts at once with the consonants' head cut. Its beat still
orders it among the other commands: a note-off, ``/ne``, all-notes-off at or before the
beat leaves it alone, and a note-on that will glide a held voice (legato, as far as the
commands queued before it tell) waits for its beat. Immediate note-ons start at their event.

Speech jobs queue and speak one after another; notes are polyphonic up to ``max_voices``.
Stealing: a new voice beyond the limit takes the place of the oldest released note, else of
the oldest note, else of the speech (which fades over one block).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from daemon import expression, score
from daemon import protocol as P
from daemon.jobs import Job, ScoreEnd
from daemon.runs import LivePhrase, Run
from daemon.sink import NullSink, OfflineSink
from daemon.synth import Note, Phrase, Renderer, Speech, Sung, fill
from dsp.dynamics import limit

log = logging.getLogger("melgand.scheduler")
RAMP = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, 110))).astype(np.float32)  # a 5 ms fade-in


@dataclass
class Active:
    job: Job
    sound: Speech | Sung
    offset: int  # first sample within the next block
    born: int = field(default_factory=itertools.count().__next__)
    fading: bool = False
    heard: bool = False
    key: tuple = ()  # (note id, pitch) that a note-off must name; legato moves it
    order: tuple = (float("-inf"), -1)  # its note-on's (beat, seq): later commands reach it
    joined: list[Job] = field(default_factory=list)  # jobs sung legato by this voice
    ramp: np.ndarray | None = None  # a fade-in still to apply (a voice that starts cut)


class Scheduler:
    MARGIN = 0.010  # s an immediate message may take from its arrival to the render worker

    def __init__(
        self,
        renderer: Renderer,
        sink,
        *,
        max_voices: int = 8,
        latency_ms: float = 30.0,
        buffer_ms: float = 25.0,
        block: int = 256,
        on_event=None,
        max_queue: int = 256,
        fallback=None,
        params: dict | None = None,
        voices=None,
    ):
        self.renderer, self.sink = renderer, sink  # the voice for new jobs (switch_voice)
        self.named = voices  # a voice's renderer by name (score notes that name one), or None
        self.rate = renderer.rate
        self.max_voices, self.block, self.max_queue = max_voices, block, max_queue
        self.fallback = fallback or (lambda: NullSink(self.rate))  # a sink for a dead device
        self.ahead = int(buffer_ms * self.rate / 1000)
        self.latency = self._least_latency(latency_ms, sink, block)
        self.slack = [0, float("inf")]  # immediate events: how many, least slack (samples)
        self.on_event = on_event or (lambda kind, job, **kw: None)
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.events: list = []  # heap of (pos, seq, job, beat): beat, a timed note-on's
        self.unplaced: list[tuple[int, int, Job]] = []  # (beat, seq, job): voices unmade
        self.seq = itertools.count()
        self.order, self.beat = (0, -1), None  # the running event: (pos/beat, seq), its beat
        self.pos = 0
        self.voices: list[Active] = []
        self.speech_queue: deque[Job] = deque()
        self.syncs: list[Job] = []
        self.lyrics: dict[int | None, str] = {}
        self.line: deque[tuple[str, ...]] = deque()  # /lyrics: the next notes' syllables
        self._last_syllable: tuple[tuple, float] = ((), 0.0)  # the last live note: phones, time
        self.runs: list[Run] = []  # timed notes' live phrases that later notes may join
        # the live defaults (/param/<name>): the sung expression's from [singing] (``params``)
        live = {"volume": 1.0, "speed": 1.0, "legato": 0.0, "seed": 0}
        self.params = {**live, **expression.DEFAULTS, **(params or {})}
        self.legato = self.params["legato"]  # as last sent: a timed note glides or joins a run
        self.gain = 1.0
        self.late = 0
        self.loads: deque[float] = deque(maxlen=400)
        self.peak_load = 0.0
        self.latencies: deque[float] = deque(maxlen=1000)  # seconds, received -> first sample
        self.prep = ThreadPoolExecutor(2, thread_name_prefix="melgand-prep")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0
        self._handlers: dict[type, Callable[[Job, int], None]] = {
            P.Say: self._say,
            P.NoteOn: self._note_on,
            P.NoteOff: self._note_off,
            P.NoteParam: self._note_param,
            P.Param: self._param,
            P.Simple: self._simple,
            P.Sing: self._sing,
            ScoreEnd: self._score_end,
            P.Sync: self._sync,
        }

    def _least_latency(self, latency_ms: float, sink, block: int) -> int:
        """The fixed latency of immediate commands (samples): ``latency_ms``, or the least
        that lands past what is rendered."""
        latency = int(latency_ms * self.rate / 1000)
        # an immediate event must land past what is rendered: buffer_ms, the block being
        # rendered, how far the sink's played() runs ahead of its position_at(now), and
        # MARGIN for the message's way to the worker; less would make events late, moved
        # to the next block unrendered: a block's slip
        rendered = self.ahead + block + int(getattr(sink, "lead", 0.0) * self.rate)
        # the worker drains the inbox between blocks: a message waits at most one block's
        # render (no longer than the block, while it keeps up) and its 1 ms sleep
        margin = min(self.MARGIN, block / self.rate + 0.001)
        least = rendered + int(margin * self.rate)
        if latency < least:
            log.info(
                "immediate commands sound %.0f ms after they arrive: [daemon] latency_ms "
                "%.0f is less than the %.0f ms rendered ahead (buffer_ms, a block, the "
                "sink's %.0f ms) and %.0f ms to spare",
                1000 * least / self.rate,
                latency_ms,
                1000 * rendered / self.rate,
                1000 * getattr(sink, "lead", 0.0),
                1000 * margin,
            )
            return least
        return latency

    # --- from the event loop -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue a command; voices are made (text encoded, first samples rendered) on the
        preparation thread, so that the render worker only renders."""
        if self._stop.is_set():  # stopping: no more work
            return
        job.arrival = job.arrival or time.monotonic()
        cmd = job.cmd
        if isinstance(cmd, P.Lyric):
            self.lyrics[cmd.id] = cmd.text
            return
        if isinstance(cmd, P.Param) and cmd.name == "legato":  # as sent: see _run_note
            self.legato = cmd.value
        if isinstance(cmd, P.Lyrics):  # each word's syllables, a melisma the vowel before
            self.line = deque(score.phones([{"lyric": w} for w in cmd.text.split()]))
            return
        renderer = job.renderer or self.renderer  # the voice now, whenever it is prepared
        if isinstance(cmd, P.NoteOn):
            job.lyric = (self.lyrics.pop(cmd.id, None) or self.lyrics.pop(None, None)
                         or (self.line.popleft() if self.line else "la"))  # fmt: skip
            # co-articulation: the syllable sung before and the one queued after, if any
            nxt = self.lyrics.get(None) or (self.line[0] if self.line else None)
            last, when = self._last_syllable
            before = last if job.arrival - when < 1.0 else ()  # a pause ends the phrase
            job.context = (before, tuple(renderer.phones_of(nxt)) if nxt else ())
            self._last_syllable = (tuple(renderer.phones_of(job.lyric)), job.arrival)
            if job.at is not None and self.legato < 0.5:
                self._run_note(job, renderer)
        elif isinstance(cmd, P.NoteOff) and self.runs:
            at = job.at if job.at is not None else time.time() + self.latency / self.rate
            run = next((r for r in self.runs if r.end(cmd.id, cmd.pitch, at)), None)
            if run is not None:  # its run's plan takes it: the coda ends there
                job.planned = True
                self.prep.submit(run.update)
        if isinstance(cmd, P.Say | P.NoteOn | P.Sing):
            job.ready = self.prep.submit(self._prepare, job, renderer)
        self.inbox.put(job)  # placed by its arrival now, whenever its voice is ready

    def _run_note(self, job: Job, renderer: Renderer) -> None:
        """A timed note-on goes on the run its beat touches, or starts one (see
        :mod:`daemon.runs`)."""
        now = time.time()
        self.runs = [r for r in self.runs if not r.over(now)]
        run = next((r for r in self.runs if r.joins(job.at, renderer, now)), None)
        if run is None:
            run = Run(renderer, job.at)
            self.runs.append(run)
        else:
            job.joins = True
        cmd = job.cmd
        run.add(cmd.id, cmd.pitch, cmd.velocity, job.at, job.lyric)
        job.run = run

    def switch_voice(self, renderer: Renderer) -> None:
        """From the event loop, like :meth:`submit`: jobs submitted from now on use
        ``renderer``; those already submitted keep the voice they were submitted with."""
        self.renderer = renderer

    def _prepare(self, job: Job, renderer: Renderer | None = None) -> None:
        """Make the job's voice (on the preparation thread) with ``renderer``, the voice that
        was current when it was submitted (none given: the job's own, else the current)."""
        renderer = renderer or job.renderer or self.renderer
        try:
            cmd = job.cmd
            if isinstance(cmd, P.Say):
                job.sound = Speech(renderer, cmd.text, self.params["speed"])
            elif job.joins:  # a later note of a live phrase: its voice re-planned
                job.sound = job.run.join()
                return
            elif isinstance(cmd, P.NoteOn) and job.run is not None:
                job.sound = job.run.start(self.params)
            elif isinstance(cmd, P.NoteOn):
                job.sound = Note(
                    renderer, cmd.pitch, cmd.velocity, job.lyric, self.params, job.context
                )
            else:  # a score: its phrases (note indices), each a voice (words split over
                # notes, melismas): [(indices, Phrase)]
                phones = score.phones(cmd.notes)
                job.sound = [(g, self._score_phrase(self._named(cmd.notes[g[0]], renderer),
                                                    cmd.notes, phones, g))
                             for g in score.phrases(cmd.notes)]  # fmt: skip
            # the first samples, here rather than in the render; not for notes that will
            # likely glide an already sounding voice (live legato): they start lazily
            if isinstance(cmd, P.Sing):
                for _, snd in job.sound:
                    snd.prefill(self.block)
            elif not (isinstance(cmd, P.NoteOn) and self.params["legato"] >= 0.5):
                job.sound.prefill(self.block)
        except Exception as e:  # text the voice cannot say, or a model error: this job fails
            if not isinstance(e, ValueError):
                log.exception("preparing %s failed", job.cmd)
            job.sound = None
            if job.run is not None:
                job.run.failed(cmd.id)
            self.on_event("fail", job, reason=str(e))

    def busy(self) -> str | None:
        """Why a new job is refused (a full queue), or None."""
        waiting = self._waiting()
        if waiting >= self.max_queue:
            return f"queue full: [daemon] max_queue is {self.max_queue}"
        return None

    def _waiting(self) -> int:
        queued = len(self.events) + len(self.unplaced) + self.inbox.qsize()
        return len(self.speech_queue) + queued

    def start(self) -> None:
        self.sink.start()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="melgand-render", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Fade out what sounds (one block), let the sink play it, and stop the worker (the
        sink stays open)."""
        self.prep.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.slack[0]:
            log.info(
                "%d immediate commands; the least slack: %.1f ms before its block was "
                "rendered (late: %d in all)",
                self.slack[0],
                1000 * self.slack[1] / self.rate,
                self.late,
            )

    def status(self) -> dict:
        elapsed = max(time.monotonic() - self.started_at, 1e-9)
        lat = list(self.latencies)
        return {
            "active_voices": len(self.voices),
            "queued_jobs": self._waiting(),
            "underruns": int(getattr(self.sink, "underruns", 0)),
            "avg_load": 100.0 * (float(np.mean(self.loads)) if self.loads else 0.0),
            "peak_load": 100.0 * self.peak_load,
            "nominal_rate": float(self.rate),
            "actual_rate": self.sink.played() / elapsed,
            "late": self.late,
            "latency_p50_ms": 1000 * float(np.percentile(lat, 50)) if lat else 0.0,
            "latency_p99_ms": 1000 * float(np.percentile(lat, 99)) if lat else 0.0,
        }

    # --- the worker ----------------------------------------------------------------------
    def _run(self) -> None:
        stalls = 0
        try:
            while not self._stop.is_set():
                why = self.sink.failed()
                if why:
                    self._fall_back(why)
                if getattr(self.sink, "stalls", 0) > stalls:
                    stalls = self.sink.stalls
                    log.warning(
                        "the audio device stalled (an underrun): %d so far, %.1f s of "
                        "sound skipped to keep time; a larger [daemon] "
                        "output_latency_ms makes them rarer",
                        stalls,
                        self.sink.skipped / self.rate,
                    )
                self._drain()
                if self.pos < self.sink.played() + self.ahead:
                    self._render_block()
                else:
                    time.sleep(0.001)
            self._fade_out()
        except Exception:  # a bug: say so loudly, keep the process up for a clean stop
            log.exception("the render worker failed")
            raise

    def _fall_back(self, why: str) -> None:
        """The device is gone: carry on, on the same schedule, into the fallback sink."""
        try:
            new = self.fallback()
        except Exception:
            log.exception("the fallback sink failed too: going on silently")
            new = NullSink(self.rate)
        old, self.sink = self.sink, new
        log.error("audio output failed (%s): continuing on %s", why, self.sink.name)
        self.sink.start(at=self.pos)
        threading.Thread(target=old.close, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                job = self.inbox.get_nowait()
            except queue.Empty:
                return
            if job.at is not None:
                mono = job.at - time.time() + time.monotonic()
                pos = round(self.sink.position_at(mono))
            else:
                pos = round(self.sink.position_at(job.arrival)) + self.latency
                self.slack = [self.slack[0] + 1, min(self.slack[1], pos - self.pos)]
            if pos < self.pos:
                self.late += 1
                self.on_event("late", job, seconds=(self.pos - pos) / self.rate)
                pos = self.pos
            job.pos = pos
            if job.at is not None and isinstance(job.cmd, P.NoteOn):  # placed by its lead
                self.unplaced.append((pos, next(self.seq), job))
            else:
                self._push(pos, job)

    def _push(self, pos: int, job: Job, beat: int | None = None, seq: int | None = None):
        seq = next(self.seq) if seq is None else seq
        heapq.heappush(self.events, (pos, seq, job, beat))

    def _place(self, end: int) -> None:
        """Timed note-ons whose voices are made (or whose beat is in the block to render,
        which then waits for its voice) go on the queue where their onset consonants start:
        ``lead`` before the beat, else as early as not yet rendered (see :meth:`_note_on`)."""
        keep = []
        for beat, seq, job in self.unplaced:
            if job.ready is not None and not job.ready.done() and beat >= end:
                keep.append((beat, seq, job))
                continue
            try:
                if job.ready is not None:
                    job.ready.result()  # the render waits (inside its buffer), as in _apply
            except (CancelledError, RuntimeError):  # stopping: _apply drops it
                pass
            lead = job.sound.lead if isinstance(job.sound, Sung) and not job.joins else 0
            self._push(score.onset(beat, lead, self.pos)[0], job, beat, seq)
        self.unplaced = keep

    def _render_block(self) -> None:
        t0 = time.perf_counter()
        n = self.block
        end = self.pos + n
        if self.unplaced:
            self._place(end)
        while self.events and self.events[0][0] < end:
            pos, seq, job, beat = heapq.heappop(self.events)
            self._apply(job, pos - self.pos, (pos if beat is None else beat, seq), beat)
        mix = np.zeros(n, np.float32)
        try:
            fill([v.sound for v in self.voices if not v.fading], n)  # one batched model step
        except Exception:  # a voice's model failed: each voice goes on alone below
            log.exception("the batched step failed; rendering voice by voice")
        ended = []
        for v in list(self.voices):
            k = n - v.offset
            try:
                y = v.sound.render(k)
            except Exception as e:  # this voice ends with /fail, the others sing on
                log.exception("a voice failed: %s", v.job.cmd)
                self.voices.remove(v)
                self.on_event("fail", v.job, reason=f"the voice failed ({type(e).__name__}: {e})")
                if isinstance(v.sound, Speech) and self.speech_queue:
                    nxt = self.speech_queue.popleft()
                    self._add(Active(nxt, nxt.sound, 0))
                continue
            if v.ramp is not None:
                m = min(len(y), len(v.ramp))
                y[:m] *= v.ramp[:m]
                v.ramp = v.ramp[m:] if m < len(v.ramp) else None
            if v.fading:
                y = y * np.linspace(1.0, 0.0, len(y), dtype=np.float32)
            mix[v.offset : v.offset + len(y)] += y
            if len(y) and not v.heard:  # control-to-sound: received -> handed to the sink
                v.heard = True
                if v.job.arrival and v.job.at is None and not v.job.waited:
                    self.latencies.append(time.monotonic() - v.job.arrival)
            if v.fading or v.sound.done or len(y) < k:
                ended.append((v, v.offset + len(y)))
            v.offset = 0
        for v, at in ended:
            self.voices.remove(v)
            for j in [v.job, *v.joined]:
                self.on_event("end", j, voice=v)
            if isinstance(v.sound, Speech) and self.speech_queue:
                nxt = self.speech_queue.popleft()
                self._add(Active(nxt, nxt.sound, at))
        out, self.gain = limit(mix * self.params["volume"], self.gain, rate=self.rate)
        self.sink.write(out)
        self.pos = end
        load = (time.perf_counter() - t0) / (n / self.rate)
        self.loads.append(load)
        self.peak_load = max(self.peak_load * 0.999, load)
        idle = not (self.voices or self.speech_queue or self.events or self.unplaced)
        if self.syncs and idle:
            for job in self.syncs:
                self.on_event("synced", job)
            self.syncs.clear()

    def _apply(self, job: Job, offset: int, order: tuple | None = None,
               beat: int | None = None) -> None:  # fmt: skip
        """Run a command at ``offset`` samples into the block being rendered; ``order``: its
        place among the commands, ``(pos, seq)`` (a timed note-on's: its ``beat``)."""
        self.order = order or (self.pos + offset, next(self.seq))
        self.beat = beat
        if job.ready is not None:
            try:
                job.ready.result()  # the render waits (inside its buffer); the onset stays exact
            except (CancelledError, RuntimeError):  # stopping
                return
            if job.sound is None:
                return
        handler = self._handlers.get(type(job.cmd))
        if handler is not None:
            handler(job, offset)

    def _say(self, job: Job, offset: int) -> None:
        if any(isinstance(v.sound, Speech) for v in self.voices):
            job.waited = True
            self.speech_queue.append(job)
        else:
            self._add(Active(job, job.sound, offset, order=self.order))

    def _note_on(self, job: Job, offset: int) -> None:
        """A new voice, or (legato) a held one glides to the note. A timed note-on comes
        here first where its consonants start, before its beat: a glide waits for the beat;
        a new voice starts, its vowel on the beat (``skip``: consonants before now, cut)."""
        cmd, order, beat = job.cmd, self.order, self.beat
        if job.joins:  # a later note of a live phrase: its voice sings it
            v = next((a for a in self.voices if a.sound is job.run.voice), None)
            if v is None:  # the phrase was stopped (all notes off): nothing to sing
                self.on_event("end", job, voice=None)
                return
            v.key = (cmd.id, cmd.pitch)
            v.joined.append(job)
            self.on_event("go", job, voice=v)
            return
        early = beat is not None and self.pos + offset < beat
        if early and job.run is None and self._glides(order):
            self._push(beat, job, beat, order[1])  # legato: no consonants, at its beat
            return
        held = [] if early else self._notes(None, None, held=True, before=order)
        if self.params["legato"] >= 0.5 and held and job.run is None:  # one voice glides
            v = held[-1]
            v.sound.glide_to(cmd.pitch)  # over its portamento
            v.key = (cmd.id, cmd.pitch)
            v.joined.append(job)
            self.on_event("go", job, voice=v)
            return
        if beat is not None and isinstance(job.sound, Sung):  # a timetag: the vowel on it
            start, job.skip = score.onset(beat, job.sound.lead, self.pos)
            offset = start - self.pos  # where placed, or (a glide that did not) at once
        ramp = None
        if job.skip:  # its start falls before now: not sung, and the cut faded in
            job.sound.render(job.skip)
            ramp = RAMP
            log.debug(
                "%s: its first %.0f ms fall before now: not sung", cmd, 1000 * job.skip / self.rate
            )
        key = (cmd.id, cmd.pitch)
        self._add(Active(job, job.sound, offset, key=key, ramp=ramp, order=order))

    def _glides(self, order: tuple) -> bool:
        """Whether the note-on at ``order`` (its beat, seq) will glide a held voice (legato)
        at its beat rather than start one, as far as the commands queued before it tell."""
        legato = self.params["legato"]
        keys = [v.key for v in self._notes(None, None, held=True, before=order)]
        queued = [(p if b is None else b, s, j) for p, s, j, b in self.events]
        for _, _, j in sorted(q for q in [*queued, *self.unplaced] if q[:2] < order):
            cmd = j.cmd
            if isinstance(cmd, P.Param) and cmd.name == "legato":
                legato = cmd.value
            elif isinstance(cmd, P.NoteOn):  # it glides the last held note, or adds one
                keys = [*keys[: -1 if legato >= 0.5 else None], (cmd.id, cmd.pitch)]
            elif isinstance(cmd, P.NoteOff):
                keys = [k for k in keys if not _names(k, cmd.id, cmd.pitch)]
            elif isinstance(cmd, P.Simple) and cmd.name in ("allnotesoff", "allsoundoff"):
                keys = []
        return legato >= 0.5 and bool(keys)

    def _note_off(self, job: Job, offset: int) -> None:
        if job.planned:  # a live phrase's note: its plan ends it
            return
        for v in self._notes(job.cmd.id, job.cmd.pitch, before=self.order):
            v.sound.release()

    def _note_param(self, job: Job, offset: int) -> None:
        cmd = job.cmd
        runs = [v for v in self.voices
                if isinstance(v.sound, LivePhrase) and cmd.id in v.sound.ids]  # fmt: skip
        for v in self._notes(cmd.id, None, before=self.order) + runs:
            if cmd.name == "pitch":
                v.sound.bend = cmd.value
            elif cmd.name == "volume":
                v.sound.gain = cmd.value
            else:  # an expression setting of this note: /ne/vibrato_depth ...
                v.sound.own[cmd.name] = cmd.value

    def _seed(self, i: int) -> int:
        """A score note's fluctuation seed: reproducible from the live seed and its index."""
        return expression.score_seed(int(self.params["seed"]), i)

    def _named(self, note: dict, renderer: Renderer) -> Renderer:
        """The voice a score note names (``"voice"``: a duet), else ``renderer``."""
        name = note.get("voice")
        if name is None:
            return renderer
        if self.named is None:
            raise ValueError(f"note at {note['start']:g} s: no voice {name!r} here")
        return self.named(name)

    def _score_phrase(self, renderer: Renderer, notes: list[dict], phones: list, group: list[int]
                      ) -> Phrase:  # fmt: skip
        """A score phrase's voice (notes ``group``), each note with its own expression, the
        first with the phrase's fluctuation seed."""
        own = [expression.for_score_note(notes[i]) for i in group]
        own[0]["seed"] = self._seed(group[0])
        chosen = [notes[i] for i in group]
        return Phrase(renderer, chosen, [phones[i] for i in group], self.params, own,
                      score.melismas(chosen))  # fmt: skip

    def _param(self, job: Job, offset: int) -> None:
        self.params[job.cmd.name] = job.cmd.value

    def _simple(self, job: Job, offset: int) -> None:
        now = [v for v in self.voices if v.order <= self.order]  # not notes timed later
        if job.cmd.name == "allnotesoff":  # notes, not speech
            for v in now:
                if isinstance(v.sound, Sung):
                    v.sound.release()
        elif job.cmd.name == "allsoundoff":
            for v in now:
                v.fading = True
            while self.speech_queue:  # dropped unsung: their senders hear that they ended
                self.on_event("end", self.speech_queue.popleft(), voice=None)

    def _sing(self, job: Job, offset: int) -> None:
        """The score's notes become events of their own, from its time 0 at ``job.pos``."""
        notes = job.cmd.notes
        self.on_event("go", job, voice=None)
        base = score.PRIVATE - 10_000 * (next(self.seq) % 10_000)  # its own note ids
        for at, j in score.events(notes, job.sound, job.pos, self.pos, self.rate, base):
            self._push(at, j)
        end = job.pos + max(int((n["start"] + n["dur"]) * self.rate) for n in notes)
        self._push(end, Job(ScoreEnd(job), pos=end))

    def _score_end(self, job: Job, offset: int) -> None:
        self.on_event("end", job.cmd.job, voice=None)

    def _sync(self, job: Job, offset: int) -> None:
        self.syncs.append(job)

    def _add(self, a: Active) -> None:
        sounding = [v for v in self.voices if not v.fading]
        if len(sounding) >= self.max_voices:
            notes = [v for v in sounding if isinstance(v.sound, Sung)]
            released = [v for v in notes if v.sound.released]
            victim = min(released or notes or sounding, key=lambda v: v.born)
            victim.fading = True
            log.debug("voice limit %d: stealing %s", self.max_voices, victim.job.cmd)
        self.voices.append(a)
        self.on_event("go", a.job, voice=a)

    def _notes(self, nid: int | None, pitch: float | None, held: bool = False,
               before: tuple | None = None) -> list[Active]:  # fmt: skip
        """Held notes named by id (or, without one, by pitch); ``held``: all of them;
        ``before``: only those whose note-on comes before that ``(beat, seq)``."""
        out = []
        for v in self.voices:
            if not isinstance(v.sound, Note) or v.sound.released or v.fading:
                continue
            if before is not None and v.order > before:  # a timed note sung ahead of its beat
                continue
            if held or _names(v.key, nid, pitch):
                out.append(v)
        return out

    def render_offline(self, job: Job, preroll: float = 0.0, limit_s: float = 600.0) -> None:
        """Render one job (a score, a phrase) as fast as the CPU goes, through the same
        events, voices and mixer as live; the job's time 0 is ``preroll`` seconds in (sample
        ``round(preroll * rate)``). A score is placed before the first block, so that its
        first onset consonants start in the preroll, or are cut where they fall before 0."""
        why, hook = [], self.on_event
        self.on_event = lambda kind, j, **kw: why.append(kw.get("reason", kind))
        self._prepare(job)
        self.on_event = hook
        if job.sound is None:
            raise ValueError(why[-1] if why else f"cannot render {job.cmd}")
        finished = []
        hook = self.on_event
        self.on_event = lambda kind, j, **kw: (
            finished.append(j) if kind == "end" else None,
            hook(kind, j, **kw),
        )
        job.pos = round(preroll * self.rate)
        if isinstance(job.cmd, P.Sing):
            self._apply(job, 0)
        else:
            self._push(job.pos, job)
        while not (any(j is job for j in finished) and not self.voices):
            self._render_block()
            if self.pos > limit_s * self.rate:
                raise RuntimeError(f"{job.cmd} did not end within {limit_s} s")
        for _ in range(int(0.3 * self.rate / self.block)):  # the tails of the last notes
            self._render_block()
        self.on_event = hook

    def _fade_out(self) -> None:
        for v in self.voices:
            v.fading = True
        self._render_block()
        self.voices.clear()
        deadline = time.monotonic() + 1.0
        while self.sink.played() < self.pos and time.monotonic() < deadline:
            time.sleep(0.005)  # the fade reaches the device before it closes


def _names(key: tuple, nid: int | None, pitch: float | None) -> bool:
    """Whether a note-off or ``/ne`` naming ``nid`` (or, without one, ``pitch``) names the
    note whose key is ``key``."""
    k_id, k_pitch = key
    if nid is not None:
        return k_id == nid
    return pitch is not None and abs(k_pitch - pitch) < 0.5


def render_score(
    renderer: Renderer,
    sing: P.Sing,
    max_voices: int = 8,
    preroll: float = 0.0,
    params: dict | None = None,
    voices=None,
) -> np.ndarray:
    """A score sung offline on its own timeline: sample ``n`` is score time ``n / rate``
    after ``preroll`` seconds of silence. Onset consonants that the singer starts before
    the score's time 0 (less the preroll) are cut at 0, and the log says by how much.

    The render itself starts a whole number of blocks before time 0 and its head is then
    dropped: the notes sit at the same phase of the blocks whatever the preroll, so a
    preroll shifts the same samples (where a note-off takes effect is block-quantized).
    ``voices``: a voice's renderer by name, for notes that name one (a duet)."""
    sink = OfflineSink(renderer.rate)
    sched = Scheduler(renderer, sink, max_voices=max_voices, params=params, voices=voices)
    job = Job(sing, source="score")
    want = round(preroll * renderer.rate)
    whole = -(-want // sched.block) * sched.block
    sched.render_offline(job, whole / renderer.rate)
    if isinstance(job.sound, list):
        for g, snd in job.sound:
            n = sing.notes[g[0]]
            cut = snd.lead - want - int(n["start"] * renderer.rate)
            if cut > 0:
                log.info(
                    "note %d (%r at %.3f s): its onset consonants would start %.0f ms "
                    "before the audio does and are cut by that much; --preroll %.2f "
                    "keeps them whole",
                    g[0],
                    n["lyric"],
                    n["start"],
                    1000 * cut / renderer.rate,
                    cut / renderer.rate,
                )
    return sink.audio()[whole - want :]
