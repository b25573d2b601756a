"""Scores for `melgand sing`: the design's score JSON, or MIDI / KAR files with lyric events.

Both become the :class:`~daemon.protocol.Sing` command that the daemon takes over MQTT, and
:func:`render` plays it through the same scheduler, voices and mixer as live, only as fast as
the CPU goes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from daemon import protocol as P


class ScoreError(ValueError):
    user_error = True


def load(path: Path) -> P.Sing:
    path = Path(path)
    if not path.is_file():
        raise ScoreError(f"{path}: no such score file")
    if path.suffix.lower() in (".mid", ".midi", ".kar"):
        return _midi(path)
    try:
        return P.mqtt_sing(path.read_bytes())
    except P.ProtocolError as e:
        raise ScoreError(f"{path}: {e}") from None


def _midi(path: Path) -> P.Sing:
    """Notes (any channel but 10, the drums) with the lyric events (``lyrics``, or KAR's
    ``text`` events) that fall at or before each note's start."""
    import mido

    try:
        mid = mido.MidiFile(str(path))
    except (OSError, ValueError, EOFError) as e:
        raise ScoreError(f"{path}: not a readable MIDI file ({e})") from None
    t, notes, open_notes, lyrics = 0.0, [], {}, []
    for msg in mid:  # merged tracks, times in seconds (tempo applied)
        t += msg.time
        if msg.is_meta and msg.type in ("lyrics", "text"):
            text = msg.text.strip().lstrip("/\\")
            if text and not text.startswith("@"):  # KAR headers start with @
                lyrics.append((t, text))
        elif msg.type == "note_on" and msg.velocity > 0 and msg.channel != 9:
            open_notes[(msg.channel, msg.note)] = (t, msg.velocity)
        elif msg.type in ("note_off", "note_on") and (msg.channel, msg.note) in open_notes:
            start, vel = open_notes.pop((msg.channel, msg.note))
            notes.append({"pitch": float(msg.note), "start": start, "dur": max(t - start, 0.05),
                          "velocity": float(vel), "lyric": "la"})  # fmt: skip
    if not notes:
        raise ScoreError(f"{path}: no notes in the MIDI file")
    notes.sort(key=lambda n: n["start"])
    k = 0
    for n in notes:  # each lyric goes to the first note at or after it
        while k < len(lyrics) and lyrics[k][0] <= n["start"] + 0.02:
            n["lyric"] = lyrics[k][1].replace(" ", "") or "la"
            k += 1
    return P.Sing(notes)


def render(renderer, sing: P.Sing, max_voices: int = 8, preroll: float = 0.5) -> np.ndarray:
    """The score sung, ``preroll`` seconds of lead-in first (room for the consonants sung
    ahead of the first beat)."""
    from daemon.scheduler import Job, Scheduler
    from daemon.sink import OfflineSink

    sink = OfflineSink(renderer.rate)
    sched = Scheduler(renderer, sink, max_voices=max_voices)
    sched.render_offline(Job(sing, source="score"), preroll)
    return sink.audio()
