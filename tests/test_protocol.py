"""OSC and MQTT parsing: golden datagrams in, typed commands out, bad input named."""

from __future__ import annotations

import json
import struct

import pytest
from pythonosc.osc_message import OscMessage

from daemon import protocol as P


def osc_str(s: str) -> bytes:
    b = s.encode() + b"\0"
    return b + b"\0" * (-len(b) % 4)


# Golden datagrams, written out by hand from the OSC 1.0 specification.
SAY = osc_str("/say") + osc_str(",si") + osc_str("hello world") + struct.pack(">i", 7)
MNOTE = osc_str("/mnote") + osc_str(",ffi") + struct.pack(">ffi", 60.5, 100.0, 3)
FNOTE_REL = osc_str("/fnote/rel") + osc_str(",f") + struct.pack(">f", 440.0)
VKB = osc_str("/vkb_midi/1/note/64") + osc_str(",f") + struct.pack(">f", 0.5)
STATUS = osc_str("/status") + osc_str(",")


def bundle(seconds: int, fraction: int, *messages: bytes) -> bytes:
    out = osc_str("#bundle") + struct.pack(">II", seconds, fraction)
    for m in messages:
        out += struct.pack(">i", len(m)) + m
    return out


def test_golden_messages_parse_to_commands():
    assert SAY == bytes.fromhex("2f73617900000000 2c736900 68656c6c6f20776f726c6400 00000007")
    [pk] = P.parse_datagram(SAY)
    assert pk.at is None and P.command(pk.address, pk.args) == P.Say("hello world", 7)
    [pk] = P.parse_datagram(MNOTE)
    assert P.command(pk.address, pk.args) == P.NoteOn(60.5, 100.0, 3)
    [pk] = P.parse_datagram(FNOTE_REL)
    assert P.command(pk.address, pk.args) == P.NoteOff(pytest.approx(69.0), None)
    [pk] = P.parse_datagram(VKB)
    assert P.command(pk.address, pk.args) == P.NoteOn(64.0, 63.5)
    [pk] = P.parse_datagram(STATUS)
    assert P.command(pk.address, pk.args) == P.Simple("status")
    assert P.command("/lyrics", ["the mor- ning"]) == P.Lyrics("the mor- ning")


def test_bundles_keep_their_timetags_and_nest():
    ntp = 2208988800  # seconds from 1900 to 1970
    inner = bundle(ntp + 1_800_000_000, 1 << 31, MNOTE)
    data = bundle(ntp + 1_800_000_000, 0, SAY, inner)
    pks = P.parse_datagram(data)
    assert [p.address for p in pks] == ["/say", "/mnote"]
    assert pks[0].at == pytest.approx(1_800_000_000.0)
    assert pks[1].at == pytest.approx(1_800_000_000.5)
    [now] = P.parse_datagram(bundle(0, 1, STATUS))  # timetag 1: immediately
    assert now.at is None


@pytest.mark.parametrize(
    "address,args,reason",
    [
        ("/say", [], "argument 1 (text) must be a non-empty string"),
        ("/say", [3], "argument 1 (text) must be a non-empty string"),
        ("/mnote", [60.0], "argument 2 (velocity) must be a number"),
        ("/mnote", [200.0, 10.0], "outside 0..127"),
        ("/fnote", [1e6, 10.0], "outside 8.0..13000.0"),
        ("/mnote", [60.0, 10.0, "x"], "argument 3 (id) must be an integer"),
        ("/param/loudness", [1.0], "unknown parameter 'loudness'"),
        ("/param/volume", [9.0], "outside 0.0..4.0"),
        ("/ne/pitch", [], "note id) is missing"),
        ("/sync", [], "sync id) is missing"),
        ("/nothing", [], "unknown address /nothing"),
        ("/mnote", [float("nan"), 1.0], "outside 0..127"),
    ],
)
def test_bad_messages_say_what_is_wrong(address, args, reason):
    with pytest.raises(P.ProtocolError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        P.command(address, args)


def test_garbage_datagrams_are_refused():
    for junk in (b"", b"hello", b"#bundle\0" + b"\x01\x02", osc_str("/say") + b",s\0"):
        with pytest.raises(P.ProtocolError):
            P.parse_datagram(junk)


def test_velocity_zero_is_a_note_off_and_replies_build():
    assert P.command("/mnote", [60, 0]) == P.NoteOff(60.0, None)
    m = OscMessage(P.reply("/status.reply", 1, 2, 3, 0, 1.5, 2.5, 22050.0, 22049.0))
    assert m.address == "/status.reply" and m.params[:4] == [1, 2, 3, 0]
    m = OscMessage(P.reply("/fail", "/say", "why", 4))
    assert m.params == ["/say", "why", 4]


def test_mqtt_payloads():
    assert P.mqtt_say(b"hello") == (P.Say("hello"), None)
    cmd, at = P.mqtt_say(b'{"text": "hi", "id": 5, "at": 1800000000.5}')
    assert cmd == P.Say("hi", 5) and at == 1800000000.5
    with pytest.raises(P.ProtocolError, match="not valid JSON"):
        P.mqtt_say(b"{oops")
    with pytest.raises(P.ProtocolError, match='non-empty "text"'):
        P.mqtt_say(b'{"id": 1}')
    sing = P.mqtt_sing(b'{"bpm": 120, "unit": "beat", "id": 2, "notes": '
                       b'[{"pitch": 60, "start": 0, "dur": 1, "lyric": "la"}]}')  # fmt: skip
    assert sing.id == 2 and sing.notes[0]["dur"] == 0.5
    with pytest.raises(P.ProtocolError, match="note 0 needs numbers"):
        P.mqtt_sing(b'{"notes": [{"pitch": "C4"}]}')
    assert P.mqtt_control(b'{"cmd": "allsoundoff"}') == P.Simple("allsoundoff")
    assert P.mqtt_control(b'{"param": "volume", "value": 0.5}') == P.Param("volume", 0.5)
    with pytest.raises(P.ProtocolError, match="unknown cmd"):
        P.mqtt_control(b'{"cmd": "reboot"}')


def test_limiter_holds_the_ceiling_and_lets_quiet_audio_through():
    import numpy as np

    from dsp.dynamics import limit

    loud = (np.sin(np.arange(22050) / 7) * 3).astype(np.float32)
    out, gain = limit(loud)
    assert np.abs(out).max() <= 0.98 + 1e-6 and gain < 0.5
    quiet = (np.sin(np.arange(44100) / 7) * 0.3).astype(np.float32)
    out, gain = limit(quiet, gain)  # the gain recovers within the release time
    np.testing.assert_allclose(out[-2000:], quiet[-2000:], atol=1e-4)
    assert gain > 0.999


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b'{"notes": [{"pitch": 60, "start": 0, "dur": 1, "velocity": -5}]}', "velocity 1..127"),
        (b'{"bpm": 0, "unit": "beat", "notes": [{"pitch": 60, "start": 0, "dur": 1}]}', "bpm"),
        (b'{"bpm": "fast", "notes": [{"pitch": 60, "start": 0, "dur": 1}]}', "bpm"),
        (b'{"notes": [[60, 0, 1]]}', "note 0 needs numbers"),
    ],
)
def test_hostile_scores_are_refused(payload, reason):
    with pytest.raises(P.ProtocolError, match=reason):
        P.mqtt_sing(payload)


def test_hostile_say_fields_are_refused():
    with pytest.raises(P.ProtocolError, match='"at" must be'):
        P.mqtt_say(b'{"text": "hi", "at": NaN}')
    with pytest.raises(P.ProtocolError, match='"voice" must be'):
        P.mqtt_say(b'{"text": "hi", "voice": ["a"]}')


def test_mqtt_job_ids_are_strings_or_integers_echoed_unchanged():
    """Home Assistant and Node-RED send string ids; OSC ids stay integers."""
    assert P.mqtt_say(b'{"text": "hi", "id": "j42"}')[0].id == "j42"
    assert P.mqtt_say(b'{"text": "hi", "id": 42}')[0].id == 42
    assert P.mqtt_say(b'{"text": "hi", "id": ""}')[0].id == ""
    long = "x" * P.MAX_JOB_ID
    assert P.mqtt_say(json.dumps({"text": "hi", "id": long}).encode())[0].id == long
    sing = b'{"id": "s-1", "notes": [{"pitch": 60, "start": 0, "dur": 1}]}'
    assert P.mqtt_sing(sing).id == "s-1"
    with pytest.raises(P.ProtocolError, match="MAX_JOB_ID"):
        P.mqtt_say(json.dumps({"text": "hi", "id": long + "x"}).encode())
    for bad in (b"1.5", b"true", b"[1]", b'{"a": 1}'):
        with pytest.raises(P.ProtocolError, match=r'"id" must be a string .* or an integer'):
            P.mqtt_say(b'{"text": "hi", "id": ' + bad + b"}")
        with pytest.raises(P.ProtocolError, match='"id" must be a string'):
            P.mqtt_sing(b'{"id": ' + bad + b', "notes": [{"pitch": 60, "start": 0, "dur": 1}]}')
    with pytest.raises(P.ProtocolError, match=r"argument 2 \(id\) must be an integer"):
        P.command("/say", ["hi", "j42"])
