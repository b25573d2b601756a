"""Scores for `melgand sing`: the design's score JSON, or MIDI / KAR files with lyric events.

Both become the :class:`~daemon.protocol.Sing` command that the daemon takes over MQTT;
:func:`events` turns its notes into the jobs the scheduler plays (live, or offline for
`melgand sing`: :func:`daemon.scheduler.render_score`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from daemon import protocol as P
from daemon.jobs import Job
from model.frontend import lyric_phones
from model.g2p import is_vowel

if TYPE_CHECKING:
    from daemon.synth import Sung

MELISMA = ("_", "+", "~")  # a syllable that holds the previous vowel
PRIVATE = -(10**6)  # a score's note ids lie below this, out of the way of users' ids


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
            notes.append(
                {
                    "pitch": float(msg.note),
                    "start": start,
                    "dur": max(t - start, 0.05),
                    "velocity": float(vel),
                    "lyric": "la",
                }
            )
    if not notes:
        raise ScoreError(f"{path}: no notes in the MIDI file")
    notes.sort(key=lambda n: n["start"])
    k = 0
    for n in notes:  # each lyric goes to the first note at or after it
        while k < len(lyrics) and lyrics[k][0] <= n["start"] + 0.02:
            n["lyric"] = lyrics[k][1].replace(" ", "") or "la"
            k += 1
    return P.Sing(notes)


def phones(notes: list[dict]) -> list[tuple[str, ...]]:
    """Each note's phones: words split over notes ("hel-", "lo"); a melisma (an empty
    syllable) holds the previous note's vowel."""
    out, last = [], ("aa",)
    for ph in lyric_phones([n["lyric"] for n in notes]):
        vowels = [p for p in ph if is_vowel(p)]
        out.append(tuple(ph) if ph else last)
        last = (vowels[-1],) if vowels else last
    return out


def onset(beat: int, lead: int, now: int) -> tuple[int, int]:
    """``(start, skip)`` of a note whose vowel lands on ``beat``: its ``lead`` samples of
    onset consonants start before the beat, but nothing starts before ``now``, so that the
    first ``skip`` samples of the consonants are cut (all of them: the beat has passed)."""
    skip = min(max(0, now - (beat - lead)), lead)  # consonants only
    return max(now, beat - lead + skip), skip


def phrases(notes: list[dict], touching: float = 0.05) -> list[list[int]]:
    """The score's notes (indices) in phrases, each sung by one voice: runs of notes that
    follow one another, each starting within ``touching`` seconds of the end of the one
    before (a rest ends a phrase; notes sounding together, chords, go to lines of their
    own), of one voice (a note's ``voice``), in order of their first note's start."""
    lines: list[list[int]] = []
    for i in sorted(range(len(notes)), key=lambda i: notes[i]["start"]):
        n = notes[i]
        for line in lines:
            last = notes[line[-1]]
            if last.get("voice") != n.get("voice"):
                continue
            if abs(n["start"] - (last["start"] + last["dur"])) <= touching:
                line.append(i)
                break
        else:
            lines.append([i])
    return lines


def melismas(notes: list[dict]) -> list[bool]:
    """Whether each note of a phrase holds the syllable before it on (its lyric ``_``)."""
    return [i > 0 and n["lyric"].strip() in MELISMA for i, n in enumerate(notes)]


def events(notes: list[dict], sounds: list[tuple[list[int], Sung]], t0: int, now: int,
           rate: int, base: int = PRIVATE) -> list[tuple[int, Job]]:  # fmt: skip
    """A score's phrases (``sounds``: each its notes' indices, as :func:`phrases` gives them,
    and its voice) as ``(sample, Job)`` events from sample ``t0``: each phrase a note-on (id
    ``base - `` its first note's index) placed so that its first vowel lands on its first
    beat, its onset consonants before it (the phrase times the rest itself:
    :class:`daemon.synth.Phrase`).

    Nothing starts before ``now``: a phrase whose consonants would start earlier starts at
    ``now`` with their first ``skip`` samples cut, so that its vowel still lands on the beat
    (a phrase whose first beat has passed starts late, whole from its vowel on)."""
    out = []
    for g, snd in sounds:
        n = notes[g[0]]
        start, skip = onset(t0 + int(n["start"] * rate), snd.lead, now)
        on = Job(P.NoteOn(n["pitch"], n["velocity"], base - g[0]), pos=start, sound=snd,
                 skip=skip)  # fmt: skip
        out.append((start, on))
    return out
