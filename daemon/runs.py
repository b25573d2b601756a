"""Timed live notes sung as phrases: a run of touching timetagged notes is one voice.

A DAW (or the bench) sends its notes as timetagged OSC bundles ahead of their time, so the
daemon knows a note's end, and the next note, before it sings them. A score's phrase is
sung far better than a voice a note (its syllables encoded together, the generator running
through, legato moves: docs/results.md, Singing), so timed notes are sung the same way:

- A timed note-on starts a :class:`Run` (its voice a :class:`LivePhrase`), or joins the run
  whose last note ends on its beat (within ``TOUCHING``), if it comes early enough to be
  planned in (``JOIN_AHEAD``). Its lyric is its syllable; ``_`` holds the vowel before.
- A note-off naming a note of a run gives that note its end: its coda ends there, as a
  score note's does. A note-off that comes later than the coda needs starts the coda now.
- Each change re-plans the phrase from everything known (:meth:`LivePhrase.replan`, on the
  preparation thread); the voice takes the new plan at its next frame, the frames already
  sung kept, the plan put on the first beat's frame. A note whose end is not known yet is
  planned ``OPEN`` seconds long, its vowel held where that would end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from daemon import expression, score
from daemon.synth import Phrase, Renderer

TOUCHING = 0.05  # s between a note's end and the next note's beat: one phrase
JOIN_AHEAD = 0.15  # s before its beat a note-on must come to join a run
OPEN = 2.0  # s a note whose end is unknown is planned to last


@dataclass
class Run:
    """The notes of one live phrase known so far (times in seconds from the first beat,
    ``t0``, a unix time), and its voice once made."""

    renderer: Renderer
    t0: float
    notes: list[dict] = field(default_factory=list)
    voice: LivePhrase | None = None
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    made: threading.Event = field(default_factory=threading.Event)  # its voice, or a failure
    dead: bool = False  # its first note failed: nothing joins it

    def add(self, nid: int | None, pitch: float, velocity: float, at: float, lyric) -> None:
        """A note at unix time ``at`` singing ``lyric`` (text, or phones from ``/lyrics``);
        the note before, if any, ends there."""
        melisma = isinstance(lyric, str) and lyric.strip() in score.MELISMA and bool(self.notes)
        with self.lock:
            self.notes.append({"id": nid, "pitch": float(pitch), "velocity": float(velocity),
                               "start": at - self.t0, "dur": None, "lyric": lyric,
                               "melisma": melisma})  # fmt: skip
            self.version += 1

    def end(self, nid: int | None, pitch: float | None, at: float) -> bool:
        """A note-off at unix time ``at``: the open note it names gets its end; whether one
        did."""
        with self.lock:
            for n in reversed(self.notes):
                named = n["id"] == nid if nid is not None else abs(n["pitch"] - pitch) < 0.5
                if n["dur"] is None and named:
                    n["dur"] = max(0.05, at - self.t0 - n["start"])
                    self.version += 1
                    return True
        return False

    def last_end(self) -> float | None:
        """The unix time the last note ends, None while it is open."""
        with self.lock:
            last = self.notes[-1]
            return None if last["dur"] is None else self.t0 + last["start"] + last["dur"]

    def joins(self, at: float, renderer: Renderer, now: float) -> bool:
        """Whether a note-on at unix time ``at`` (sent at ``now``) with ``renderer`` goes on
        this run."""
        end = self.last_end()
        if renderer is not self.renderer or end is None or abs(at - end) > TOUCHING:
            return False
        return at - now >= JOIN_AHEAD and not self.over(now)

    def over(self, now: float) -> bool:
        """Whether nothing can join it any more: it failed, its voice has ended, or its end
        is past."""
        end = self.last_end()
        ended = self.voice is not None and self.voice.done
        return self.dead or ended or (end is not None and end < now)

    def snapshot(self) -> tuple[int, list[dict]]:
        """The notes known now, each with its ``phones``: the run's lyrics split as a
        score's are (a word over notes, "mor-" "ning"; ``/lyrics`` syllables as given)."""
        with self.lock:
            version, notes = self.version, [dict(n) for n in self.notes]
        text: list[dict] = []  # a stretch of notes with text lyrics
        for n in [*notes, None]:
            if n is not None and isinstance(n["lyric"], str):
                text.append(n)
                continue
            for m, ph in zip(text, score.phones(text), strict=True):
                m["phones"] = ph
            text = []
            if n is not None:
                n["phones"] = tuple(n["lyric"])
        return version, notes

    def start(self, params: dict) -> LivePhrase:
        """The run's voice (on the preparation thread), planned from the notes known now."""
        try:
            version, notes = self.snapshot()
            self.voice = LivePhrase(self.renderer, notes, params, version)
            self.update()  # a change while it was made
            return self.voice
        finally:
            self.made.set()

    def join(self) -> LivePhrase:
        """The voice re-planned with a later note (on the preparation thread, after
        :meth:`start`)."""
        self.made.wait(30.0)
        if self.voice is None:
            raise ValueError("the phrase it joins could not be sung: see its first note's /fail")
        self.update()
        return self.voice

    def failed(self, nid: int | None) -> None:
        """A note's syllable could not be sung: the first, and the run is dead; a later one
        leaves the plan."""
        with self.lock:
            if self.voice is None:
                self.dead = True
                self.made.set()
                return
            self.notes = [n for n in self.notes if n["id"] != nid] or self.notes
            self.version += 1

    def update(self) -> None:
        """Re-plan the voice if the notes changed since its plan (preparation thread)."""
        if self.voice is not None and self.version > self.voice.version:
            self.voice.replan(*self.snapshot())


def _timed(notes: list[dict]) -> list[dict]:
    """Notes as :class:`~daemon.synth.Phrase` takes them: an open one ``OPEN`` s long."""
    return [{**n, "dur": OPEN if n["dur"] is None else n["dur"]} for n in notes]


def _own(notes: list[dict]) -> list[dict]:
    """Each note's own settings: a score note's where its length is known (its vibrato a
    quarter in, none on short notes), else the live ones."""
    return [{} if n["dur"] is None else expression.for_score_note(n) for n in notes]


def _hold(plan, notes: list[dict]) -> int | None:
    """The frame an open last note's vowel is held at (where its plan ends it), else None."""
    return plan.ends[-1] - 1 if notes[-1]["dur"] is None else None


class LivePhrase(Phrase):
    """A :class:`Run`'s voice: a phrase whose plan grows and changes as its notes come."""

    def __init__(self, r: Renderer, notes: list[dict], params: dict, version: int = 0):
        self.version, self.pending, self.live = version, None, params
        self._lock = threading.Lock()
        super().__init__(r, _timed(notes), [n["phones"] for n in notes], params, _own(notes),
                         [n["melisma"] for n in notes])  # fmt: skip
        self.hold_at = _hold(self.plan, notes)
        self.ids = [n["id"] for n in notes]
        self.clock = self.i  # the plan's frame that the next frame fed is, held or not

    def _plan(self, r, notes, phones, params, own, melisma):
        self.plan, moves = Phrase._plan(r, notes, phones, params, own, melisma)  # sung now
        return self.plan, moves

    def replan(self, version: int, notes: list[dict]) -> None:
        """A new plan from ``notes`` (preparation thread), taken at the voice's next frame.
        An end that comes too late for its coda moves on to where the voice is."""
        r, at = self.r, self.clock
        for _ in range(4):  # a short note's coda is squeezed: a longer one's, less
            own = _own(notes)
            s, moves = Phrase._plan(r, _timed(notes), [n["phones"] for n in notes], self.live,
                                    own, [n["melisma"] for n in notes])  # fmt: skip
            late = at + 2 * r.chunk + (s.lead - self.plan.lead) - s.ends[-1]
            if notes[-1]["dur"] is None or late <= 0:
                break
            notes = [*notes[:-1], {**notes[-1], "dur": notes[-1]["dur"] + late * r.hop / r.rate}]
        with self._lock:  # two preparation threads: the newest plan wins
            if self.pending is None or version > self.pending[0]:
                self.pending = (version, s, moves, own, _hold(s, notes), [n["id"] for n in notes])

    def _take(self) -> None:
        """The pending plan, if newer: the frames from here on are its (put on the first
        beat's frame); the note sung now takes its settings (``/ne`` ones kept)."""
        with self._lock:
            pending, self.pending = self.pending, None
        if pending is None or pending[0] <= self.version:
            return
        self.version, s, self.moves, own, self.hold_at, self.ids = pending
        self.i = self.clock = max(0, self.clock + s.lead - self.plan.lead)
        self.plan, self.up, self.ctrl = s, s.up, s.controls
        self.own = {**own[self.moved], **self.own}

    def _rows(self, n: int) -> list[int]:
        self._take()
        if self.hold_at is None:
            rows = super()._rows(n)
        else:  # the open vowel held at its frame
            rows = [min(k, self.hold_at) for k in range(self.i, self.i + n)]
        self.clock += len(rows)
        return rows
