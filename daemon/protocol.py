"""OSC datagrams and MQTT payloads -> typed commands; replies back to OSC.

Parsing never raises anything but :class:`ProtocolError`, whose message is the reason a
``/fail`` reply or an MQTT error event carries. Bundles keep their timetag (unix seconds,
``None`` for "immediately"), so that the scheduler places them on the audio clock; nested
bundles take their own timetags.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from pythonosc import osc_bundle, osc_message
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from daemon import expression


class ProtocolError(ValueError):
    pass


JobId = int | str  # OSC: integers; MQTT: integers or strings (Home Assistant, Node-RED)

MAX_JOB_ID = 128  # characters of a string job id (MQTT)


@dataclass
class Say:
    text: str
    id: JobId | None = None
    voice: str | None = None


@dataclass
class NoteOn:
    pitch: float  # MIDI number (float: microtones)
    velocity: float  # 1..127
    id: int | None = None


@dataclass
class NoteOff:
    pitch: float | None
    id: int | None = None


@dataclass
class Lyric:
    text: str
    id: int | None = None


@dataclass
class Lyrics:
    """A line of syllables for the next notes, one each (a word split over notes: ``mor-
    ning``); it replaces what is left of the line before."""

    text: str


@dataclass
class NoteParam:
    id: int
    name: str  # "pitch" (semitones offset), "volume", or an expression setting (cents, Hz,
    # s: daemon/expression.py)
    value: float


@dataclass
class Sing:
    notes: list[dict]
    id: JobId | None = None


@dataclass
class Param:
    name: str
    value: float


@dataclass
class Simple:
    """Commands without arguments: allnotesoff, allsoundoff, status, version."""

    name: str


@dataclass
class Sync:
    id: int


@dataclass
class Notify:
    on: bool


@dataclass
class SwitchVoice:
    name: str


@dataclass
class Packet:
    """One OSC message with its bundle's time (unix seconds; None: immediately)."""

    address: str
    args: list[Any]
    at: float | None = None


# live defaults (/param/<name>, MQTT control "param"): the mixer's, speech's, and the sung
# expression's (daemon/expression.py; also per note: /ne/<name>, score note fields)
PARAMS = {"volume": (0.0, 4.0), "speed": (0.25, 4.0), "legato": (0.0, 1.0), **expression.RANGES}

_PARAM_HELP = {
    "volume": "output gain (1 = unchanged)",
    "speed": "speaking rate (1 = normal)",
    "legato": ">= 0.5: a new note glides the sounding one (legato)",
    **expression.HELP,
}


@dataclass(frozen=True)
class Arg:
    """One argument of an OSC address: its type tag, name, and allowed range or values."""

    tag: str  # "s", "f" or "i" (a number argument also takes the other numeric type)
    name: str
    lo: float | None = None
    hi: float | None = None
    optional: bool = False
    values: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Address:
    args: tuple[Arg, ...]
    description: str
    reply: str | None = None  # the reply's address, for queries


_ID = Arg("i", "id", optional=True)
_NOTE = Arg("f", "pitch", 0, 127)
_HZ = Arg("f", "frequency", 8.0, 13000.0)
_VEL = Arg("f", "velocity", 0, 127)

# The OSC address space: what ``command`` parses (names, ranges) and what OSCQuery
# (daemon/oscquery.py) describes, from this one table. ``/vkb_midi/<ch>/note/<pitch>`` is the
# pattern ``VKB``; the ``/param/<name>`` addresses come from ``PARAMS``.
OSC: dict[str, Address] = {
    "/say": Address((Arg("s", "text"), _ID), "speak text; /done [id] once it has been heard"),
    "/mnote": Address((_NOTE, _VEL, _ID), "note on at a MIDI pitch (velocity 0: note off)"),
    "/mnote/rel": Address(
        (_NOTE, Arg("f", "release velocity", 0, 127, optional=True), _ID),
        "note off (with a note id the pitch is ignored)",
    ),
    "/fnote": Address((_HZ, _VEL, _ID), "note on at a frequency in Hz (velocity 0: note off)"),
    "/fnote/rel": Address(
        (_HZ, Arg("f", "release velocity", 0, 127, optional=True), _ID),
        "note off by frequency (with a note id the frequency is ignored)",
    ),
    "/lyric": Address((Arg("s", "lyric"), _ID), "syllable(s) for the next note, or the note id"),
    "/lyrics": Address(
        (Arg("s", "syllables"),),
        'a line of syllables for the next notes, one each ("mor- ning": a word over two)',
    ),
    "/ne/pitch": Address(
        (Arg("i", "note id"), Arg("f", "pitch", -48, 48)),
        "pitch offset of a sounding note, semitones",
    ),
    "/ne/volume": Address(
        (Arg("i", "note id"), Arg("f", "volume", 0, 4)), "volume of a sounding note"
    ),
    **{
        f"/ne/{k}": Address(
            (Arg("i", "note id"), Arg("f", k, lo, hi)), f"a sounding note's {expression.HELP[k]}"
        )
        for k, (lo, hi) in expression.RANGES.items()
    },
    "/allnotesoff": Address((), "release every note"),
    "/allsoundoff": Address((), "silence everything now"),
    "/voice": Address((Arg("s", "voice"),), "switch voice (by name) for new jobs"),
    "/status": Address(
        (),
        "ask for /status.reply: 1, active voices, queued jobs, underruns, "
        "avg load %, peak load %, nominal rate, actual rate",
        "/status.reply",
    ),
    "/sync": Address(
        (Arg("i", "sync id"),), "/synced id once everything before it is done", "/synced"
    ),
    "/notify": Address(
        (Arg("i", "on", 0, 1, values=(0, 1)),),
        "1: send /n_go, /n_end and /late to this client; 0: stop",
    ),
    "/version": Address((), "ask for /version.reply s", "/version.reply"),
    **{
        f"/param/{k}": Address((Arg("f", k, lo, hi),), _PARAM_HELP.get(k, k))
        for k, (lo, hi) in PARAMS.items()
    },
}
VKB = Address((_VEL,), "note velocity (Reaper / DrivenByMoss virtual keyboard; 0: off)")
VKB_PATTERN = "/vkb_midi/{channel}/note/{pitch}"


def midi_of_hz(f: float) -> float:
    return 69.0 + 12.0 * math.log2(f / 440.0)


def parse_datagram(dgram: bytes) -> list[Packet]:
    """Messages of a datagram, bundle times kept; an unparsable datagram raises."""
    try:
        if osc_bundle.OscBundle.dgram_is_bundle(dgram):
            return _bundle(osc_bundle.OscBundle(dgram))
        if osc_message.OscMessage.dgram_is_message(dgram):
            m = osc_message.OscMessage(dgram)
            return [Packet(m.address, list(m.params))]
    except (osc_bundle.ParseError, osc_message.ParseError, ValueError, IndexError) as e:
        raise ProtocolError(f"not an OSC packet ({e})") from None
    raise ProtocolError("not an OSC packet (neither a message nor a bundle)")


def _bundle(b: osc_bundle.OscBundle) -> list[Packet]:
    at = None if b.timestamp == osc_types.IMMEDIATELY else float(b.timestamp)
    out = []
    for c in b:
        if isinstance(c, osc_message.OscMessage):
            out.append(Packet(c.address, list(c.params), at))
        else:
            out.extend(_bundle(c))
    return out


def _num(args: list, i: int, what: str, lo: float | None = None, hi: float | None = None):
    if i >= len(args) or isinstance(args[i], bool) or not isinstance(args[i], int | float):
        raise ProtocolError(f"argument {i + 1} ({what}) must be a number")
    v = float(args[i])
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ProtocolError(f"argument {i + 1} ({what}) = {args[i]} is outside {lo}..{hi}")
    return v


def _opt_id(args: list, i: int) -> int | None:
    if len(args) <= i:
        return None
    if isinstance(args[i], bool) or not isinstance(args[i], int):
        raise ProtocolError(f"argument {i + 1} (id) must be an integer")
    return int(args[i])


MAX_TEXT = 2000  # characters of a text, unless told otherwise ([daemon] max_text)


def check_text(text: Any, what: str = "text", max_text: int = MAX_TEXT) -> str:
    """``text`` if it is a non-empty string of at most ``max_text`` characters (the daemon's
    ``[daemon] max_text``); else a :class:`ProtocolError` saying which."""
    if not isinstance(text, str) or not text.strip():
        raise ProtocolError(f"argument 1 ({what}) must be a non-empty string")
    if len(text) > max_text:
        raise ProtocolError(
            f"{what} is {len(text)} characters; the limit ([daemon] max_text) is {max_text}"
        )
    return text


def _text(args: list, what: str, max_text: int) -> str:
    return check_text(args[0] if args else None, what, max_text)


_VKB = re.compile(r"^/vkb_midi/(\d+)/note/(\d+)$")


def _take(spec: Address, a: list, i: int, max_text: int = MAX_TEXT) -> Any:
    """Argument ``i`` as the table ``OSC`` declares it (None: an optional one left out)."""
    g = spec.args[i]
    if g.tag == "s":
        return _text(a[i:], g.name, max_text)
    if g.tag == "i" and g.lo is None:  # an id
        v = _opt_id(a, i)
        if v is None and not g.optional:
            raise ProtocolError(f"argument {i + 1} ({g.name}) is missing")
        return v
    return _num(a, i, g.name, g.lo, g.hi)


def command(address: str, args: list, max_text: int = MAX_TEXT) -> Any:
    """The typed command for an OSC message; a :class:`ProtocolError` says what is wrong.
    Names and ranges come from the table :data:`OSC` (which OSCQuery publishes); texts are
    at most ``max_text`` characters."""
    a = args
    spec = OSC.get(address)
    if spec is None:
        m = _VKB.match(address)
        if m:
            pitch = float(m.group(2))
            if pitch > 127:
                raise ProtocolError(f"note {m.group(2)} is outside 0..127")
            vel = _take(VKB, a, 0)
            vel = vel * 127 if 0 < vel <= 1 and isinstance(a[0], float) else vel
            return NoteOff(pitch) if vel == 0 else NoteOn(pitch, vel)
        if address.startswith("/param/"):
            raise ProtocolError(f"unknown parameter {address[7:]!r}; known: {sorted(PARAMS)}")
        raise ProtocolError(f"unknown address {address}")
    if address in ("/say", "/lyric"):
        kind = Say if address == "/say" else Lyric
        return kind(_take(spec, a, 0, max_text), _take(spec, a, 1))
    if address == "/lyrics":
        return Lyrics(_take(spec, a, 0, max_text))
    if address in ("/mnote", "/fnote"):
        pitch = _pitch(address, a)
        vel = _take(spec, a, 1)
        nid = _take(spec, a, 2)
        return NoteOff(pitch, nid) if vel == 0 else NoteOn(pitch, vel, nid)
    if address in ("/mnote/rel", "/fnote/rel"):
        pitch = _pitch(address, a)
        k = 2 if len(a) > 1 and isinstance(a[1], float) else 1  # optional release velocity
        if k == 2:
            _take(spec, a, 1)
        return NoteOff(pitch, _opt_id(a, k))
    if address.startswith("/ne/"):  # /ne/pitch, /ne/volume, /ne/<expression>
        return NoteParam(_take(spec, a, 0), address[4:], _take(spec, a, 1))
    if not spec.args:  # /allnotesoff, /allsoundoff, /status, /version
        return Simple(address[1:])
    if address.startswith("/param/"):
        return Param(address[7:], _take(spec, a, 0))
    if address == "/voice":
        return SwitchVoice(_take(spec, a, 0, max_text))
    if address == "/sync":
        return Sync(_take(spec, a, 0))
    if address == "/notify":
        return Notify(bool(_take(spec, a, 0)))
    raise ProtocolError(f"{address} is in the table but not parsed")  # a bug: a test holds it


def _pitch(address: str, a: list) -> float:
    v = _take(OSC[address], a, 0)
    return midi_of_hz(v) if address.startswith("/f") else v


def reply(address: str, *args: Any) -> bytes:
    b = OscMessageBuilder(address)
    for v in args:
        if isinstance(v, bool):
            b.add_arg(int(v), "i")
        elif isinstance(v, int):
            b.add_arg(v, "i" if -(2**31) <= v < 2**31 else "h")
        elif isinstance(v, float):
            b.add_arg(v, "f")
        else:
            b.add_arg(str(v), "s")
    return b.build().dgram


# MQTT payloads ------------------------------------------------------------------------


def job_id(d: dict) -> JobId | None:
    """An MQTT job's ``"id"``: a JSON string (up to ``MAX_JOB_ID`` characters) or integer,
    echoed unchanged in the job's events; absent: None."""
    jid = d.get("id")
    if jid is None or (isinstance(jid, int) and not isinstance(jid, bool)):
        return jid
    if isinstance(jid, str):
        if len(jid) > MAX_JOB_ID:
            raise ProtocolError(
                f'"id" is {len(jid)} characters; the limit (MAX_JOB_ID in '
                f"daemon/protocol.py) is {MAX_JOB_ID}: send a shorter id"
            )
        return jid
    raise ProtocolError(
        f'"id" must be a string (up to {MAX_JOB_ID} characters) or an integer, '
        f"not {type(jid).__name__}"
    )


def mqtt_say(payload: bytes, max_text: int = MAX_TEXT) -> tuple[Say, float | None]:
    """Plain UTF-8 text, or JSON ``{"text", "id", "voice", "at"}``: (command, unix time); the
    text is at most ``max_text`` characters."""
    try:
        s = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("say payload is not UTF-8 text") from None
    if s.lstrip().startswith("{"):
        d = _json(s, "say")
        text = d.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ProtocolError('say JSON needs a non-empty "text" string')
        at = d.get("at")
        if at is not None and (
            isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at)
        ):
            raise ProtocolError('"at" must be a unix time in seconds')
        voice = d.get("voice")
        if voice is not None and not isinstance(voice, str):
            raise ProtocolError('"voice" must be a voice\'s name')
        return Say(_text([text], "text", max_text), job_id(d), voice), at
    return Say(_text([s], "text", max_text)), None


def mqtt_sing(payload: bytes) -> Sing:
    d = _json(payload, "sing")
    notes = d.get("notes")
    if not isinstance(notes, list) or not notes:
        raise ProtocolError('sing JSON needs a non-empty "notes" list')
    bpm = d.get("bpm", 60)
    if isinstance(bpm, bool) or not isinstance(bpm, int | float) or not 1 <= bpm <= 1000:
        raise ProtocolError('"bpm" must be a number of beats a minute, 1..1000')
    scale = 60.0 / bpm if d.get("unit") == "beat" else 1.0
    voice = _voice_name(d.get("voice"), "")
    out = []
    for i, n in enumerate(notes):
        try:
            pitch, start, dur = float(n["pitch"]), float(n["start"]), float(n["dur"])
            velocity = float(n.get("velocity", 100))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError(f'note {i} needs numbers "pitch", "start" and "dur"') from None
        if not (
            0 <= pitch <= 127 and 0 <= start <= 3600 and 0 < dur <= 60 and 1 <= velocity <= 127
        ):
            raise ProtocolError(
                f"note {i}: pitch 0..127, start 0..3600 s, dur 0..60 s, velocity 1..127"
            )
        note = {
            "pitch": pitch,
            "start": start * scale,
            "dur": dur * scale,
            "lyric": str(n.get("lyric", "la"))[:64],
            "velocity": velocity,
        }
        for k, (lo, hi) in expression.RANGES.items():  # its own expression (seconds, cents)
            v = n.get(k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise ProtocolError(
                    f'note {i}: "{k}" must be a number {lo:g}..{hi:g} ({expression.HELP[k]})'
                )
            note[k] = float(v)
        named = _voice_name(n.get("voice"), f"note {i}: ") or voice
        if named:  # sung by that voice (a duet: notes of two voices at once)
            note["voice"] = named
        out.append(note)
    return Sing(out, job_id(d))


def _voice_name(v: Any, where: str) -> str | None:
    """A voice's name from JSON (None: not given)."""
    if v is None:
        return None
    if not isinstance(v, str) or not 0 < len(v) <= 64:
        raise ProtocolError(f'{where}"voice" must be a voice\'s name (a string, 1..64 chars)')
    return v


def mqtt_control(payload: bytes) -> Any:
    d = _json(payload, "control")
    if "cmd" in d:
        if d["cmd"] not in ("allnotesoff", "allsoundoff"):
            raise ProtocolError(f'unknown cmd {d["cmd"]!r}; use "allnotesoff" or "allsoundoff"')
        return Simple(d["cmd"])
    if "param" in d:
        name = d["param"]
        if name not in PARAMS:
            raise ProtocolError(f"unknown parameter {name!r}; known: {sorted(PARAMS)}")
        return Param(name, _num([d.get("value")], 0, name, *PARAMS[name]))
    raise ProtocolError('control JSON needs "cmd" or "param" and "value"')


def _json(payload: bytes | str, what: str) -> dict:
    try:
        d = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"{what} payload is not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ProtocolError(f"{what} payload must be a JSON object")
    return d
