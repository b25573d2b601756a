"""`melgand serve`: one asyncio process wiring OSC and MQTT to the scheduler and the sink
(and, when configured, Wyoming text to speech and an OSCQuery endpoint).

Start: load the voice and vocoder, open the sink (saying which and why), bind OSC, connect
MQTT (unless off), speak the greeting. Stop (SIGINT / SIGTERM): take no more work, fade out,
close the sink (a wav file is then complete), publish ``offline``, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import threading
from pathlib import Path

import numpy as np

from daemon import protocol as P
from daemon.osc import OscServer
from daemon.scheduler import Job, Scheduler
from daemon.sink import open_sink
from daemon.synth import Note, Renderer, Speech, fill
from dsp.dynamics import limit
from model import registry

log = logging.getLogger("melgand")


class Daemon:
    def __init__(
        self,
        cfg,
        *,
        sink: str | None = None,
        osc: str | None = None,
        mqtt: str | None = None,
        version: str = "",
        ready=None,
        wyoming: str | None = None,
    ):
        self.cfg, self.version = cfg, version
        self.sink_spec = sink or cfg.daemon.sink
        self.osc_spec = osc
        self.mqtt_url = _given(mqtt, cfg.mqtt.url)
        self.ready = ready  # called with the daemon once it listens (tests, benches)
        self.stopping = asyncio.Event()
        self.osc: OscServer | None = None
        self.mqtt = None
        self.osc_addr: tuple[str, int] | None = None
        self.wyoming_uri = _given(wyoming, cfg.wyoming.uri)
        self.wyoming = self.oscquery = None
        self.wyoming_addr: tuple[str, int] | None = None
        self.oscquery_addr: tuple[str, int] | None = None
        self.renderers: dict[str, Renderer] = {}  # by voice name, loaded once
        self._loading = threading.Lock()  # one voice loads at a time (from worker threads)
        self._mqtt_task: asyncio.Task | None = None

    def known_voices(self) -> dict[str, Path | None]:
        """Voices by name: the packaged ones ("default", "joe": ``model/voices/NAME/``) and
        each ``NAME.safetensors`` of ``[daemon] voices_dir``. Messages name voices, never
        files."""
        from model import voice as _voice

        out: dict[str, Path | None] = dict(_voice.packaged_voices())
        if self.cfg.daemon.voices_dir:
            for p in sorted(Path(self.cfg.daemon.voices_dir).glob("*.safetensors")):
                if not p.name.endswith(f".{_voice.SINGING}"):  # NAME's singing model
                    out.setdefault(p.stem, p)
        return out

    def _voice(self, name: str, path: Path | None = None):
        """The named voice (of ``known_voices``), or the one in the file ``path``."""
        from model import voice as _voice

        if path is None:
            known = self.known_voices()
            if name not in known:
                raise ValueError(f"unknown voice {name!r}; known: {sorted(known)}")
            path = known[name]
        return _voice.Voice.load(path, self.cfg.audio, self.cfg.daemon.singing_model)

    @staticmethod
    def _device(name: str) -> str:
        """``[daemon] device`` -> ``"cuda"`` or ``"cpu"``. ``auto`` is CUDA where torch sees
        a GPU; torch is imported to look only where an NVIDIA device node exists (on the
        CPU the models run without torch)."""
        nodes = any(Path(p).exists() for p in ("/dev/nvidia0", "/dev/nvidiactl"))
        if name == "cpu" or (name == "auto" and not nodes):
            return "cpu"
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if name == "cuda":
            raise ValueError('[daemon] device = "cuda" but torch sees no CUDA device; use "auto"')
        return "cpu"

    def _vocoder(self, voice: str = "default"):
        """``[daemon] vocoder``, through the registry (a packaged one as the packaged voice
        ``voice`` has it: its own, trained on its corpus, where it has one)."""
        cfg = self.cfg
        return registry.load(cfg.vocoder_name(live=True), cfg.audio, cfg.dsp_settings(), voice)

    def renderer_for(self, name: str, path: Path | None = None) -> Renderer:
        """The named voice's renderer, loaded once, then kept (``path``: a voice file that is
        not among ``known_voices``). Loading blocks: call it off the event loop."""
        with self._loading:
            if name not in self.renderers:
                voice = self._voice(name, path).to(self.device)
                vocoder = self.renderer.vocoder  # shared, unless the voice has its own
                spec = self.cfg.vocoder_name(live=True)
                own = spec in registry.PACKAGED and path is None
                if own and registry.packaged_path(spec, name) != registry.packaged_path(spec):
                    vocoder = self._vocoder(name)
                    if hasattr(vocoder, "to"):  # a neural vocoder
                        vocoder.to(self.device)
                self.renderers[name] = Renderer.configured(voice, vocoder, self.cfg.daemon)
            return self.renderers[name]

    async def switch_voice(self, name: str) -> None:
        """Switch for new jobs; what sounds finishes with the old one. The voice loads on a
        worker thread; the switch itself is made here, on the event loop."""
        renderer = await self.loop.run_in_executor(None, self.renderer_for, name)
        self.renderer = renderer
        self.scheduler.switch_voice(renderer)

    def _event(self, kind: str, job: Job, **kw) -> None:
        """From the render worker: hand over to the loop (gone once the daemon has stopped)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._dispatch, kind, job, kw)

    def _dispatch(self, kind: str, job: Job, kw: dict) -> None:
        if job.source == "osc" and job.ctx is not None and self.osc is not None:
            self.osc.event(kind, job, **kw)
        if self.mqtt is not None:
            self.mqtt.event(kind, job, **kw)
        if kind == "late":
            log.info("late by %.1f ms: %s", 1000 * kw["seconds"], type(job.cmd).__name__)

    async def run(self) -> int:
        d = self.cfg.daemon
        self.loop = asyncio.get_running_loop()
        sys.setswitchinterval(0.0005)  # the loop gets the GIL soon after a datagram lands
        self.device = self._device(d.device)
        if self.wyoming_uri:  # listening first: describe is answered while the models load
            from daemon.wyoming import WyomingServer

            self.wyoming = WyomingServer(
                self.wyoming_uri,
                version=self.version,
                voices=self.known_voices,
                configured=d.voice,
                max_text=d.max_text,
            )
            self.wyoming_addr = await self.wyoming.start()
        await self._load_models()
        sink, why = open_sink(self.sink_spec, self.renderer.rate, d.output_latency_ms)
        log.info("sink: %s (%s)", sink.name, why)
        self.scheduler = Scheduler(
            self.renderer,
            sink,
            max_voices=d.max_voices,
            latency_ms=d.latency_ms,
            buffer_ms=d.buffer_ms,
            block=d.block,
            on_event=self._event,
            max_queue=d.max_queue,
            voices=self.renderer_for,  # a voice a score note names (ValueError if unknown)
            fallback=self._fallback_sink,
            params=self.cfg.singing.params(),
        )
        await self._open_transports()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.add_signal_handler(sig, self.stopping.set)
        self.scheduler.start()
        if d.greeting:
            self.scheduler.submit(Job(P.Say(d.greeting), None, "greeting"))
        if self.ready is not None:
            self.ready(self)
        await self.stopping.wait()
        await self._shut_down()
        return 0

    async def _load_models(self) -> None:
        """The vocoder and the configured voice, loaded off the loop (it serves on), then run
        once."""
        d = self.cfg.daemon
        vocoder = await self.loop.run_in_executor(None, self._vocoder, d.voice or "default")
        if hasattr(vocoder, "to"):  # a neural vocoder
            vocoder.to(self.device)
        voice = await self.loop.run_in_executor(None, self._voice, d.voice or "default")
        self.renderer = Renderer.configured(voice.to(self.device), vocoder, d)
        self.renderers[d.voice or "default"] = self.renderer
        if self.renderer.singing is not self.renderer:
            log.info("voice %s sings with its singing model", d.voice or "default")
        log.info("models on %s", self.device)
        torch = sys.modules.get("torch")  # imported by a torch vocoder or voice, if any
        if d.threads and torch is not None:
            torch.set_num_threads(d.threads)
        await self.loop.run_in_executor(None, warm_up, self.renderer)
        gc.collect()
        gc.freeze()  # what exists now (model, caches) is never scanned again: shorter pauses

    async def _open_transports(self) -> None:
        """OSC, then OSCQuery beside it, Wyoming's synthesis, and MQTT: each is handed the
        scheduler's and the daemon's calls that it makes, nothing else."""
        d, sched = self.cfg.daemon, self.scheduler
        host, port = self.cfg.osc.host, self.cfg.osc.port
        if self.osc_spec:
            host, _, p = self.osc_spec.rpartition(":")
            port = int(p)
        self.osc = OscServer(
            self.cfg.osc,
            submit=sched.submit,
            busy=sched.busy,
            status=sched.status,
            switch_voice=self.switch_voice,
            version=self.version,
            max_text=d.max_text,
        )
        self.osc_addr = self.osc.open(self.loop, host or "127.0.0.1", port)
        log.info("OSC on udp://%s:%d", *self.osc_addr)
        if self.cfg.oscquery.port:
            from daemon.oscquery import OscQueryServer

            self.oscquery = OscQueryServer(self.osc_addr, voices=self.known_voices)
            self.oscquery_addr = await self.oscquery.start(self.osc_addr[0], self.cfg.oscquery.port)
            log.info("OSCQuery on http://%s:%d", *self.oscquery_addr)
        if self.wyoming is not None:
            self.wyoming.models_ready(
                current=lambda: self.renderer,
                renderer_for=self.renderer_for,
                speed=lambda: sched.params["speed"],
                live=lambda: bool(sched.voices),
            )
        if self.mqtt_url:
            from daemon.mqtt import MqttLink

            self.mqtt = MqttLink(
                self.mqtt_url,
                self.cfg.mqtt,
                submit=sched.submit,
                busy=sched.busy,
                status=sched.status,
                renderer_for=self.renderer_for,
                max_text=d.max_text,
            )
            self._mqtt_task = asyncio.create_task(self.mqtt.run())

    async def _shut_down(self) -> None:
        log.info("stopping: fading out")
        self.osc.close()  # no more work
        for server in (self.wyoming, self.oscquery):
            if server is not None:
                await server.stop()
        await self.loop.run_in_executor(None, self.scheduler.stop)
        await self.loop.run_in_executor(None, self.scheduler.sink.close)
        if self.mqtt is not None:
            await self.mqtt.close()
            self._mqtt_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mqtt_task
        log.info("stopped")

    def _fallback_sink(self):
        """``[daemon] fallback_sink`` (from the render worker, when the device fails)."""
        d = self.cfg.daemon
        return open_sink(d.fallback_sink, self.renderer.rate, d.output_latency_ms)[0]

    def stop(self) -> None:
        """Thread-safe stop (tests)."""
        self.loop.call_soon_threadsafe(self.stopping.set)


def _given(flag: str | None, configured: str) -> str:
    """A command-line setting: none given, the configured one; "off", none ("")."""
    return configured if flag is None else ("" if flag == "off" else flag)


def warm_up(renderer: Renderer) -> None:
    """Run every path once (JIT compiles, thread pools, caches) before the clock starts."""
    rate = renderer.rate
    Speech(renderer, "ready").render(rate)
    n = Note(renderer, 60, 100, "la")
    n.render(rate // 10)
    n.release()
    n.render(rate)
    # the batched steps: the singing model's and the speech model's
    voices = [*(Note(renderer, 60 + k, 100, "la") for k in range(4)),
              Speech(renderer, "ready"), Speech(renderer, "ready")]  # fmt: skip
    for _ in range(4):
        fill(voices, renderer.hop * renderer.chunk)
        for v in voices:
            v.render(renderer.hop * renderer.chunk)
    limit(np.zeros(256, np.float32), rate=rate)  # the mix's limiter: the first block's
