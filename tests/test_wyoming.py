"""The Wyoming server with real parts: a started daemon, the `wyoming` package's own client."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import numpy as np
import pytest
import test_daemon
from test_daemon import free_port, spawn
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from daemon import wyoming as W
from daemon.oscquery import lan_address

RATE = 22050


async def _until(client: AsyncTcpClient, stop: str, timeout: float = 60) -> list[Event]:
    """Events up to and including the first of type ``stop``."""
    out = []
    while True:
        e = await asyncio.wait_for(client.read_event(), timeout)
        assert e is not None, f"connection closed before {stop}; got {[x.type for x in out]}"
        out.append(e)
        if e.type == stop:
            return out


served = test_daemon.served  # the daemons fixture, started and stopped as there


def _audio(events: list[Event]) -> np.ndarray:
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    for c in chunks:
        assert (c.rate, c.width, c.channels) == (RATE, 2, 1)
    return np.frombuffer(b"".join(c.audio for c in chunks), "<i2").astype(np.float32) / 32768


def _plausible(x: np.ndarray, words: int) -> None:
    secs = len(x) / RATE
    assert 0.15 * words < secs < 1.2 * words + 1.0, f"{secs:.2f} s for {words} words"
    assert np.sqrt(np.mean(x**2)) > 0.01, "silence"
    assert np.abs(x).max() < 1.0


def _types(events: list[Event]) -> list[str]:
    """Event types with runs of audio-chunk collapsed into one."""
    out: list[str] = []
    for e in events:
        if not (e.type == "audio-chunk" and out and out[-1] == "audio-chunk"):
            out.append(e.type)
    return out


def test_sentences_split_on_their_ends():
    assert W.sentences("Hello there. How are") == (["Hello there."], "How are")
    assert W.sentences('He said "yes!" Then\nmore') == (['He said "yes!"', "Then"], "more")
    assert W.sentences("3.5 is a number") == ([], "3.5 is a number")
    assert W.parse_uri("tcp://0.0.0.0:10200") == ("0.0.0.0", 10200)
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        W.parse_uri("0.0.0.0:10200")


def test_mdns_only_beyond_loopback():
    assert lan_address("127.0.0.1") is None and lan_address("localhost") is None
    lan = lan_address("0.0.0.0")  # the interface towards the LAN, where there is one
    assert lan is None or not lan.startswith("127.")


def test_describe_synthesize_stream_and_bad_events(served):
    r = served(sink="null", **{"wyoming.uri": "tcp://127.0.0.1:0"})
    host, port = r.d.wyoming_addr
    assert r.d.wyoming.mdns is None  # loopback: not advertised

    async def go():
        async with AsyncTcpClient(host, port) as c:
            await c.write_event(Describe().event())
            info = Info.from_event((await _until(c, "info"))[-1])
            (tts,) = info.tts
            assert tts.name == "melgand" and tts.installed and tts.supports_synthesize_streaming
            assert tts.version and tts.attribution and tts.description
            names = [v.name for v in tts.voices]
            assert "default" in names
            assert all(v.languages == ["en_US"] and v.installed for v in tts.voices)

            # plain synthesize: audio-start, chunks of ~1024 samples, audio-stop
            t0 = time.monotonic()
            text = "The kitchen lights are now on."
            await c.write_event(Synthesize(text, voice=SynthesizeVoice("default")).event())
            ev = await _until(c, "audio-stop")
            assert _types(ev) == ["audio-start", "audio-chunk", "audio-stop"]
            start = AudioStart.from_event(ev[0])
            assert (start.rate, start.width, start.channels) == (RATE, 2, 1)
            sizes = [len(e.payload) // 2 for e in ev if e.type == "audio-chunk"]
            assert max(sizes) == W.CHUNK and all(s > 0 for s in sizes)
            _plausible(_audio(ev), len(text.split()))
            assert time.monotonic() - t0 < 30

            # an unknown voice falls back to the current one
            await c.write_event(Synthesize("Hi.", voice=SynthesizeVoice("nobody")).event())
            assert _types(await _until(c, "audio-stop"))[-1] == "audio-stop"

            # streaming: sentences spoken as they complete, one audio span, then stopped
            await c.write_event(SynthesizeStart(voice=SynthesizeVoice("default")).event())
            for part in ["The door ", "is locked. The ", "alarm is set.", " Good night"]:
                await c.write_event(SynthesizeChunk(part).event())
            first = await _until(c, "audio-chunk")  # the first sentence, before the stop
            assert _types(first) == ["audio-start", "audio-chunk"]
            full = "The door is locked. The alarm is set. Good night"
            await c.write_event(Synthesize(full).event())  # compatibility copy: ignored
            await c.write_event(SynthesizeStop().event())
            ev = first + await _until(c, "synthesize-stopped")
            assert _types(ev) == ["audio-start", "audio-chunk", "audio-stop", "synthesize-stopped"]
            _plausible(_audio(ev), len(full.split()))

            # bad events: an error each, and the connection answers afterwards
            c._writer.write(b"this is not json\n")
            await c.write_event(Event("frobnicate", {"x": 1}))
            await c.write_event(Event("synthesize", {"voice": {"name": "default"}}))
            await c.write_event(SynthesizeChunk("outside a stream").event())
            await c.write_event(Synthesize("x" * 5000).event())  # over [daemon] max_text
            errors = []
            for _ in range(5):
                e = (await _until(c, "error"))[-1]
                errors.append(Error.from_event(e).text)
            assert "not a JSON event header" in errors[0]
            assert "unknown event 'frobnicate'" in errors[1]
            assert '"text"' in errors[2]
            assert "synthesize-start first" in errors[3]
            assert "max_text" in errors[4]
            await c.write_event(Describe().event())
            assert (await _until(c, "info"))[-1].type == "info"

            # an empty stream still ends with synthesize-stopped
            await c.write_event(SynthesizeStart().event())
            await c.write_event(SynthesizeStop().event())
            assert _types(await _until(c, "synthesize-stopped")) == ["synthesize-stopped"]

        # two connections at once, each its own handler
        async with AsyncTcpClient(host, port) as a, AsyncTcpClient(host, port) as b:
            await a.write_event(Synthesize("One.").event())
            await b.write_event(Describe().event())
            assert (await _until(b, "info"))[-1].type == "info"
            assert _types(await _until(a, "audio-stop"))[-1] == "audio-stop"

    asyncio.run(go())
    # the audio went back over the connections, the OSC side still serves
    r.send("/version")
    assert r.recv("/version.reply")[1] == ["test"]


def test_serve_wyoming_flag_describes_while_loading(tmp_path):
    """`melgand serve --wyoming tcp://...`: describe is answered as soon as it listens."""
    port, osc_port = free_port(), free_port()
    log = tmp_path / "stderr"
    p = spawn(["--sink", "null", "--osc", f"127.0.0.1:{osc_port}", "--mqtt", "off",
               "--wyoming", f"tcp://127.0.0.1:{port}", "--set", "daemon.greeting=''"],
              log)  # fmt: skip

    async def go():
        deadline = time.monotonic() + 60
        while True:
            try:
                async with AsyncTcpClient("127.0.0.1", port) as c:
                    await c.write_event(Describe().event())
                    info = Info.from_event((await _until(c, "info", 10))[-1])
                    await c.write_event(Synthesize("Ready.").event())
                    ev = await _until(c, "audio-stop", 60)
                    return info, ev
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None, log.read_text()
                await asyncio.sleep(0.1)

    try:
        info, ev = asyncio.run(go())
        assert info.tts[0].name == "melgand"
        assert len(_audio(ev)) > RATE // 10
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0, log.read_text()
    assert "Wyoming on tcp://127.0.0.1" in log.read_text()


def test_refuses_a_bad_uri(tmp_path):
    port = free_port()
    log = tmp_path / "stderr"
    p = spawn(["--sink", "null", "--osc", f"127.0.0.1:{port}", "--mqtt", "off",
               "--wyoming", "0.0.0.0:10200"], log)  # fmt: skip
    assert p.wait(60) != 0
    assert "tcp://HOST:PORT" in log.read_text()


def test_port_taken_is_reported(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        log = tmp_path / "stderr"
        p = spawn(["--sink", "null", "--osc", f"127.0.0.1:{free_port()}", "--mqtt", "off",
                   "--wyoming", f"tcp://127.0.0.1:{taken}"], log)  # fmt: skip
        assert p.wait(60) != 0
    assert "cannot serve" in log.read_text()
