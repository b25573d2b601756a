"""Home Assistant's Wyoming protocol (the ``wyoming`` package): text to speech over TCP.

``melgand serve --wyoming tcp://HOST:PORT`` (or ``[wyoming] uri``) listens beside OSC and
MQTT on the daemon's event loop, one handler per connection:

- ``describe`` -> ``info``: one TtsProgram "melgand" listing every installed voice
  (``model/voices/<name>/acoustic.safetensors`` and ``[daemon] voices_dir``), streaming
  supported. It is answered at once, also while the models are still loading (the server
  listens before they load).
- ``synthesize`` (voice by name; none or an unknown name: the daemon's current voice) ->
  ``audio-start`` (22050 Hz, 16-bit, mono), ``audio-chunk`` of ``CHUNK`` samples as soon as
  they are vocoded (the voice streams chunk by chunk, as a live ``Speech`` renders), then
  ``audio-stop``. The audio goes back over the connection, never to the daemon's sink.
- ``synthesize-start``, ``synthesize-chunk``..., ``synthesize-stop``: each sentence is spoken as
  soon as it is complete (ended by ``.``, ``!``, ``?``, ``;``, ``:`` or ``…`` and a space, or a
  line break), all inside one ``audio-start`` .. ``audio-stop``; the stream always ends with
  ``synthesize-stopped``. The compatibility ``synthesize`` sent inside a stream is ignored.
- ``ping`` -> ``pong``. Anything else, and events that cannot be read (bad JSON, missing
  fields, a stream event out of order), is answered with an ``error`` event; the connection
  and the daemon carry on. A failed synthesis (text over ``[daemon] max_text``, text the voice
  cannot say, a model error) is an ``error`` event too.

Sharing the CPU with the live voices: every Wyoming synthesis, of all connections, runs on
one dedicated worker thread ("melgand-wyoming"), one request at a time, so it takes at most
one core beside the render worker, never the event loop. On the CPU the models run on
numba kernels (no torch); a torch model keeps the thread count the daemon configured
(``[daemon] threads``; torch's pool is process-wide and is not touched here). While live
voices sound, the worker paces itself to ``LIVE_PACE`` times real time (still ahead of a
client playing it), sleeping (the GIL released) after each generator + vocoder step, so that
the render worker's blocks keep their timing; with nothing live it runs flat out. The voices
are the daemon's (the same models, vocoder and caches as /say), their streaming state
private to each synthesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice
from wyoming.ping import Ping, Pong
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from daemon import protocol as P
from daemon.oscquery import advertise
from daemon.synth import Renderer, Speech
from dsp.dynamics import limit

log = logging.getLogger("melgand.wyoming")

VOICES = Path(__file__).resolve().parent.parent / "model" / "voices"
RATE, WIDTH, CHANNELS = 22050, 2, 1
CHUNK = 1024  # samples an audio-chunk
LIVE_PACE = 1.5  # at most this many times real time while live voices sound
MAX_DATA = 1 << 20  # bytes of an event's data or payload; beyond, the connection is closed
LANGUAGES = ["en_US"]
ATTRIBUTION = Attribution(name="melgand", url="")  # no project page yet
_SENTENCE = re.compile(r"(.*?(?:[.!?;:…]+[\"')\]\u201d\u2019]*\s+|\n\s*))", re.S)
_END = object()


class BadEvent(Exception):
    """An event we cannot take: answered with an ``error`` event, the connection goes on."""


def parse_uri(uri: str) -> tuple[str, int]:
    u = urlparse(uri)
    if u.scheme != "tcp" or not u.hostname or u.port is None:
        raise ValueError(
            f"Wyoming URI {uri!r}: use tcp://HOST:PORT, e.g. tcp://0.0.0.0:10200 "
            "([wyoming] uri or --wyoming)"
        )
    return u.hostname, u.port


def installed_voices(known: dict[str, Path | None]) -> dict[str, Path | None]:
    """Voices by name: each ``model/voices/<name>/`` with an ``acoustic.safetensors``, then the
    daemon's own, ``known`` (the packaged one and ``[daemon] voices_dir``'s)."""
    out: dict[str, Path | None] = {}
    if VOICES.is_dir():
        for d in sorted(VOICES.iterdir()):
            if (d / "acoustic.safetensors").is_file():
                out[d.name] = d / "acoustic.safetensors"
    for name, path in known.items():
        out.setdefault(name, path)
    return out


def _describe_voice(name: str, path: Path | None) -> str:
    readme = path.parent / "README.md" if path is not None else None
    if readme is not None and readme.is_file():
        for line in readme.read_text(encoding="utf-8").splitlines():
            if line.strip():
                return f"{name}: {line.lstrip('# ').strip()}"
    return f"melgand voice {name!r}"


def sentences(buf: str) -> tuple[list[str], str]:
    """The complete sentences at the start of ``buf`` and what is left after them."""
    out, pos = [], 0
    for m in _SENTENCE.finditer(buf):
        if m.start() != pos:
            break
        pos = m.end()
        if m.group(1).strip():
            out.append(m.group(1).strip())
    return out, buf[pos:]


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class WyomingServer:
    """Listens on ``uri`` from the start; synthesizes once :meth:`models_ready` has handed over
    the voices. ``voices``: the daemon's voices by name (``Daemon.known_voices``);
    ``configured``: ``[daemon] voice``; ``max_text``: ``[daemon] max_text``."""

    def __init__(
        self,
        uri: str,
        *,
        version: str = "",
        voices: Callable[[], dict[str, Path | None]],
        configured: str = "",
        max_text: int = P.MAX_TEXT,
    ):
        self.host, self.port = parse_uri(uri)
        self.version, self.voices = version, voices
        self.configured, self.max_text = configured, max_text
        # set by models_ready: the current voice, a voice by name (and file), the speaking
        # rate, and whether live voices sound
        self.current: Callable[[], Renderer] | None = None
        self.renderer_for: Callable[..., Renderer] | None = None
        self.speed: Callable[[], float] = lambda: 1.0
        self.live: Callable[[], bool] = lambda: False
        self.models = asyncio.Event()  # set once the voices are loaded
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="melgand-wyoming")
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task] = set()
        self.mdns = None
        self.stopping = threading.Event()

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._connection, self.host, self.port)
        addr = self.server.sockets[0].getsockname()[:2]
        self.mdns = advertise("_wyoming._tcp.local.", self.host, addr[1])
        log.info("Wyoming on tcp://%s:%d", *addr)
        return addr

    def models_ready(
        self,
        *,
        current: Callable[[], Renderer],
        renderer_for: Callable[..., Renderer],
        speed: Callable[[], float],
        live: Callable[[], bool],
    ) -> None:
        """Synthesis may start: ``current()`` is the daemon's voice now, ``renderer_for(name,
        path=None)`` loads (once) and returns another (blocking), ``speed()`` the live speaking
        rate, ``live()`` whether live voices sound (then synthesis paces itself)."""
        self.current, self.renderer_for = current, renderer_for
        self.speed, self.live = speed, live
        self.models.set()

    async def stop(self) -> None:
        self.stopping.set()  # a synthesis in flight stops at its next chunk
        if self.server is not None:
            self.server.close()
        for t in list(self.connections):
            t.cancel()
        for t in list(self.connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.mdns is not None:
            await self.mdns.stop()
        self.worker.shutdown(wait=False, cancel_futures=True)

    def info(self) -> Event:
        voices = [
            TtsVoice(
                name=name,
                description=_describe_voice(name, path),
                attribution=ATTRIBUTION,
                installed=True,
                version=self.version or None,
                languages=LANGUAGES,
            )
            for name, path in installed_voices(self.voices()).items()
        ]
        program = TtsProgram(
            name="melgand",
            description="melgand: a real-time neural voice (speech, streamed as it is made)",
            attribution=ATTRIBUTION,
            installed=True,
            version=self.version or None,
            voices=voices,
            supports_synthesize_streaming=True,
        )
        return Info(tts=[program]).event()

    async def _connection(self, reader, writer) -> None:
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await _Connection(self, reader, writer).run()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("Wyoming connection")
        finally:
            self.connections.discard(task)
            writer.close()

    # --- the worker thread ---------------------------------------------------------------
    def renderer(self, name: str | None) -> Renderer:
        """The named voice's renderer (loaded once, then kept); none or unknown: the current."""
        if not name or name == self.configured:
            return self.current()
        known = self.voices()
        if name in known:
            return self.renderer_for(name)
        path = installed_voices(known).get(name)
        if path is None:
            log.info("Wyoming: unknown voice %r, speaking with the current one", name)
            return self.current()
        return self.renderer_for(name, path)

    def render(self, text: str, voice: str | None, put, cancelled: threading.Event) -> None:
        """Speak ``text``, handing each ``CHUNK`` of 16-bit samples to ``put`` as it is made,
        then ``_END`` (or the exception that stopped it)."""
        try:
            renderer = self.renderer(voice)
            rate = renderer.rate
            sp = Speech(renderer, text, self.speed())
            gain = 1.0
            step, parts = renderer.hop * renderer.chunk, []
            while not sp.done and not (cancelled.is_set() or self.stopping.is_set()):
                t0 = time.monotonic()
                parts.append(sp.render(step))  # one generator + vocoder step
                if sum(map(len, parts)) >= CHUNK or sp.done:
                    out, gain = limit(np.concatenate(parts), gain, rate=rate)
                    parts = [out[CHUNK:]] if len(out) > CHUNK else []
                    put(pcm16(out[:CHUNK]))
                if self.live():  # live voices: leave them room
                    spent = time.monotonic() - t0
                    time.sleep(max(0.0, step / rate / LIVE_PACE - spent))
            if parts and sum(map(len, parts)):
                put(pcm16(np.concatenate(parts)))
            put(_END)
        except Exception as e:
            put(e)


class _Connection:
    def __init__(self, server: WyomingServer, reader, writer):
        self.s, self.reader, self.writer = server, reader, writer
        self.jobs: asyncio.Queue = asyncio.Queue()
        self.stream: dict | None = None  # the open synthesize-start: voice, text not yet said
        self.cancelled = threading.Event()
        self.audio_open = False  # audio-start sent, audio-stop not yet
        self.lock = asyncio.Lock()  # one event written at a time

    async def write(self, event: Event) -> None:
        async with self.lock:
            await async_write_event(event, self.writer)

    async def error(self, text: str, code: str = "bad-event") -> None:
        log.info("Wyoming error to %s: %s", self.writer.get_extra_info("peername"), text)
        with contextlib.suppress(ConnectionError):
            await self.write(Error(text=text, code=code).event())

    async def run(self) -> None:
        speaker = asyncio.create_task(self._speak())
        try:
            while True:
                try:
                    event = await self._read()
                    if event is None:
                        return
                    await self._handle(event)
                except BadEvent as e:
                    await self.error(str(e))
                except ConnectionError:
                    return
                except Exception as e:  # a bug must not end the connection: say so, go on
                    log.exception("Wyoming event")
                    await self.error(f"internal error ({type(e).__name__}: {e})", "internal")
        finally:
            self.cancelled.set()
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaker

    async def _read(self) -> Event | None:
        """The next event (None at the end of the connection); what cannot be read raises
        :class:`BadEvent`, after which the stream is at the next line again."""
        try:
            line = await self.reader.readline()
        except ValueError:  # over the reader's limit: asyncio dropped the line
            raise BadEvent("event header line too long (64 KiB at most)") from None
        if not line:
            return None
        if not line.strip():
            raise BadEvent("empty line: send one JSON event header a line")
        try:
            head = json.loads(line)
        except ValueError as e:
            raise BadEvent(f'not a JSON event header ({e}); send {{"type": ...}}') from None
        if not isinstance(head, dict) or not isinstance(head.get("type"), str):
            raise BadEvent('an event header is a JSON object with a "type" string')
        lengths = []
        for key in ("data_length", "payload_length"):
            n = head.get(key) or 0
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_DATA:
                await self.error(
                    f"{key} {n!r} is not 0..{MAX_DATA}; closing the connection", "too-large"
                )
                return None  # the rest of the stream cannot be found again
            lengths.append(n)
        try:
            data = head.get("data") or {}
            if lengths[0]:
                extra = json.loads(await self.reader.readexactly(lengths[0]))
                if not isinstance(extra, dict) or not isinstance(data, dict):
                    raise BadEvent("event data must be a JSON object")
                data = {**data, **extra}
            payload = await self.reader.readexactly(lengths[1]) if lengths[1] else None
        except asyncio.IncompleteReadError:
            return None
        except ValueError as e:
            raise BadEvent(f"event data is not JSON ({e})") from None
        if not isinstance(data, dict):
            raise BadEvent("event data must be a JSON object")
        return Event(type=head["type"], data=data, payload=payload)

    @staticmethod
    def _voice(v) -> str | None:
        return v.name if v is not None and v.name else None

    async def _handle(self, event: Event) -> None:
        t = event.type
        if Describe.is_type(t):
            await self.write(self.s.info())
        elif Ping.is_type(t):
            await self.write(Pong(text=event.data.get("text")).event())
        elif t == "select-program":
            pass  # we have one program
        elif Synthesize.is_type(t):
            if self.stream is not None:
                return  # the compatibility copy of a stream's text: the stream says it
            try:
                syn = Synthesize.from_event(event)
            except (KeyError, TypeError, AttributeError):
                raise BadEvent('synthesize needs data {"text": "...", "voice": {"name"}}') from None
            if not isinstance(syn.text, str):
                raise BadEvent('synthesize needs a "text" string')
            await self.jobs.put(("say", syn.text, self._voice(syn.voice)))
        elif SynthesizeStart.is_type(t):
            if self.stream is not None:
                raise BadEvent("synthesize-start inside a stream: send synthesize-stop first")
            try:
                start = SynthesizeStart.from_event(event)
            except (KeyError, TypeError, AttributeError):
                raise BadEvent('synthesize-start takes data {"voice": {"name"}}') from None
            self.stream = {"voice": self._voice(start.voice), "text": ""}
            await self.jobs.put(("start", self.stream["voice"]))
        elif SynthesizeChunk.is_type(t):
            if self.stream is None:
                raise BadEvent("synthesize-chunk outside a stream: send synthesize-start first")
            text = event.data.get("text")
            if not isinstance(text, str):
                raise BadEvent('synthesize-chunk needs a "text" string')
            done, rest = sentences(self.stream["text"] + text)
            limit_ = self.s.max_text
            while len(rest) > limit_:  # no sentence end in sight: say it in pieces
                cut = rest.rfind(" ", 0, limit_)
                cut = cut if cut > 0 else limit_
                done.append(rest[:cut])
                rest = rest[cut:].lstrip()
            self.stream["text"] = rest
            for s in done:
                await self.jobs.put(("sentence", s, None))
        elif SynthesizeStop.is_type(t):
            if self.stream is None:
                raise BadEvent("synthesize-stop outside a stream: send synthesize-start first")
            if self.stream["text"].strip():
                await self.jobs.put(("sentence", self.stream["text"].strip(), None))
            await self.jobs.put(("stop",))
            self.stream = None
        else:
            raise BadEvent(
                f"unknown event {t!r}; this server takes describe, synthesize, "
                "synthesize-start, synthesize-chunk, synthesize-stop and ping"
            )

    # --- one job after another -----------------------------------------------------------
    async def _speak(self) -> None:
        voice, failed = None, False
        try:
            while True:
                job = await self.jobs.get()
                kind = job[0]
                if kind == "say":
                    await self._synthesize(job[1], job[2])
                    await self._close_audio()
                elif kind == "start":
                    voice, failed = job[1], False
                elif kind == "sentence" and not failed:
                    if re.search(r"\w", job[1]):  # punctuation alone: nothing to say
                        failed = not await self._synthesize(job[1], voice)
                elif kind == "stop":
                    await self._close_audio()
                    await self.write(SynthesizeStopped().event())
        except BaseException:
            self.cancelled.set()  # the worker stops at its next chunk
            raise

    async def _close_audio(self) -> None:
        if self.audio_open:
            self.audio_open = False
            await self.write(AudioStop().event())

    async def _synthesize(self, text: str, voice: str | None) -> bool:
        """Speak ``text`` back over the connection (``audio-start`` before the first chunk
        where none is open); False, after an error event, on failure."""
        try:
            text = P.check_text(text, "text", self.s.max_text)
        except P.ProtocolError as e:
            await self.error(str(e), "bad-text")
            return False
        await self.s.models.wait()
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()

        def put(item) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has gone
                loop.call_soon_threadsafe(q.put_nowait, item)

        try:
            loop.run_in_executor(self.s.worker, self.s.render, text, voice, put, self.cancelled)
        except RuntimeError:  # the worker has shut down: the daemon is stopping
            await self.error("the daemon is stopping", "stopping")
            return False
        while True:
            item = await q.get()
            if isinstance(item, Exception):
                if isinstance(item, ValueError):  # text the voice cannot say
                    why = str(item)
                else:
                    log.error("Wyoming synthesis failed", exc_info=item)
                    why = f"internal error ({type(item).__name__}: {item})"
                await self.error(f"cannot say {text[:40]!r}: {why}", "synthesis")
                return False
            if not self.audio_open:
                self.audio_open = True
                await self.write(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
            if item is _END:
                return True
            await self.write(
                AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=item).event()
            )
