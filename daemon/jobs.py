"""What the scheduler schedules: a :class:`Job` is a command, where its replies go, and where
it sits on the audio clock. The front ends (OSC, MQTT, the CLI) make them; the scheduler and
the score (:mod:`daemon.score`, which turns a score into the jobs of its notes) read them.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from daemon import protocol as P

if TYPE_CHECKING:
    from daemon.runs import Run
    from daemon.synth import Note, Renderer, Speech


@dataclass
class ScoreEnd:
    """The end of a score's last note (internal): the score's ``end`` event goes out."""

    job: Job


Command: TypeAlias = (
    P.Say | P.NoteOn | P.NoteOff | P.Lyric | P.Lyrics | P.NoteParam | P.Sing | P.Param
    | P.Simple
    | P.Sync | ScoreEnd
)  # fmt: skip
Sound: TypeAlias = "Speech | Note | list[Note]"  # a score's voice: one note per score note


@dataclass
class Job:
    """A command and where its replies go (``ctx`` is the transport's, opaque here)."""

    cmd: Command
    ctx: object = None
    source: str = "osc"  # "osc", "mqtt", "greeting", "score", ...
    arrival: float = 0.0  # monotonic
    at: float | None = None  # unix time wanted, None: immediately
    pos: int = 0  # sample position on the audio clock
    sound: Sound | None = None  # the voice, made before the job reaches the worker
    lyric: str = "la"
    context: tuple[tuple, tuple] = ((), ())  # a live note's neighbouring syllables' phones
    waited: bool = False  # queued behind other speech
    ready: Future[None] | None = None  # the future of the voice's preparation
    renderer: Renderer | None = None  # another voice than the current one (MQTT "voice")
    skip: int = 0  # samples of the voice's start not sung: they would fall before now
    run: Run | None = None  # a timed note sung in a live phrase (:mod:`daemon.runs`)
    joins: bool = False  # a later note of its run: the run's voice sings it
    planned: bool = False  # a note-off its run's plan has taken
