"""MQTT through aiomqtt 2.x: jobs in, status, events and stats out.

Topics under ``melgand/<node>``: ``say`` and ``sing`` (QoS 1, acknowledged only once the job
is queued: paho's manual acks), ``control``; out: ``status`` (retained ``online``, with an
``offline`` Will), ``event`` (audio-start, audio-stop, done, error, late) and ``stats``
(periodic). A job's ``"id"`` (a JSON string or integer) is echoed unchanged in every event of
that job, its error events included.
With ``pool`` (MQTT 5) the daemon also takes jobs from ``$share/melgand/melgand/pool/say``.
Lost connections are retried with exponential backoff and the subscriptions renewed. The
session persists (``clean_start`` off, ``session_expiry`` seconds): QoS 1 jobs published while
the daemon is away are delivered when it comes back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon import protocol as P
from daemon.jobs import Job

if TYPE_CHECKING:
    from daemon.synth import Renderer

log = logging.getLogger("melgand.mqtt")


@dataclass
class Target:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        u = urlparse(url if "://" in url else f"mqtt://{url}")
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"MQTT URL {url!r}: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        tls = u.scheme == "mqtts"
        return cls(u.hostname, u.port or (8883 if tls else 1883), tls)


def _id_of(payload: bytes) -> P.JobId | None:
    """The id of a refused job, where one can be read (its error event carries it)."""
    try:
        d = json.loads(payload)
        return P.job_id(d) if isinstance(d, dict) else None
    except (ValueError, P.ProtocolError):
        return None


class MqttLink:
    """``[mqtt]`` settings (``cfg``) and what the messages call: ``submit`` a job, ``busy`` (why
    a new one is refused, or None), ``status`` (the scheduler's, for ``stats``) and
    ``renderer_for`` (a voice by name: blocking, so it runs on a worker thread)."""

    def __init__(
        self,
        url: str,
        cfg,
        *,
        submit: Callable[[Job], None],
        busy: Callable[[], str | None],
        status: Callable[[], dict],
        renderer_for: Callable[[str], Renderer],
        max_text: int = P.MAX_TEXT,
    ):
        self.cfg = cfg
        self.submit, self.busy, self.status = submit, busy, status
        self.renderer_for, self.max_text = renderer_for, max_text
        self.target = Target.parse(url)
        self.prefix = f"melgand/{cfg.node}"
        self.client: aiomqtt.Client | None = None
        self.connects = 0
        self._tasks: set[asyncio.Task] = set()  # publishes in flight, kept referenced

    def _client(self) -> aiomqtt.Client:
        tls_context = None
        if self.target.tls:
            tls_context = ssl.create_default_context(cafile=self.cfg.ca_file or None)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry  # QoS 1 jobs wait for us
        c = aiomqtt.Client(
            self.target.host,
            self.target.port,
            username=self.cfg.username or None,
            password=self.cfg.password or None,
            identifier=f"melgand-{self.cfg.node}",
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(f"{self.prefix}/status", b"offline", qos=1, retain=True),
            keepalive=self.cfg.keepalive,
            tls_context=tls_context,
            clean_start=False,
            properties=props,
        )
        c._client.manual_ack_set(True)
        return c

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self._client() as client:
                    self.client = client
                    self.connects += 1
                    backoff = 0.5
                    await client.publish(f"{self.prefix}/status", b"online", qos=1, retain=True)
                    for t in ("say", "sing", "control"):
                        await client.subscribe(f"{self.prefix}/{t}", qos=1)
                    if self.cfg.pool:
                        await client.subscribe("$share/melgand/melgand/pool/say", qos=1)
                    log.info("MQTT connected to %s:%d", self.target.host, self.target.port)
                    stats = asyncio.create_task(self._stats())
                    try:
                        async for msg in client.messages:  # in order: a voice may load
                            await self._handle(client, msg)
                    finally:
                        stats.cancel()
            except aiomqtt.MqttError as e:
                self.client = None
                log.warning("MQTT: %s; retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _handle(self, client: aiomqtt.Client, msg) -> None:
        topic = str(msg.topic)
        kind = topic.rsplit("/", 1)[-1]
        payload = bytes(msg.payload or b"")
        jid = None
        try:
            full = self.busy() if kind in ("say", "sing") else None
            if full:
                raise P.ProtocolError(full)
            if kind == "say":
                cmd, at = P.mqtt_say(payload, self.max_text)
                jid = cmd.id
                job = Job(cmd, None, "mqtt", at=at)
                if cmd.voice:
                    job.renderer = await self._voice(cmd.voice)
                self.submit(job)
            elif kind == "sing":
                cmd = P.mqtt_sing(payload)
                jid = cmd.id
                self.submit(Job(cmd, None, "mqtt"))
            elif kind == "control":
                self.submit(Job(P.mqtt_control(payload), None, "mqtt"))
        except P.ProtocolError as e:
            jid = jid if jid is not None else _id_of(payload)
            self.publish_event({"type": "error", "id": jid, "topic": topic, "reason": str(e)})
        except Exception as e:  # a bug must not end the MQTT link: say so, serve on
            log.exception("MQTT message on %s", topic)
            why = f"internal error ({type(e).__name__})"
            self.publish_event({"type": "error", "id": jid, "topic": topic, "reason": why})
        finally:
            if msg.qos > 0:
                client._client.ack(msg.mid, msg.qos)

    async def _voice(self, name: str) -> Renderer:
        """The named voice, loaded off the event loop the first time it is asked for."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self.renderer_for, name)
        except ValueError as e:  # an unknown voice
            raise P.ProtocolError(str(e)) from None

    def publish_event(self, event: dict) -> None:
        data = json.dumps({**event, "time": time.time()}).encode()
        if self.client is not None:
            task = asyncio.get_running_loop().create_task(
                self._publish(f"{self.prefix}/event", data)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish(self, topic: str, data: bytes, qos: int = 1) -> None:
        try:
            if self.client is not None:
                await self.client.publish(topic, data, qos=qos)
        except aiomqtt.MqttError as e:
            log.warning("MQTT publish to %s failed: %s", topic, e)

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.stats_interval)
            s = self.status()
            await self._publish(f"{self.prefix}/stats", json.dumps(s).encode(), qos=0)

    async def close(self) -> None:
        """Say ``offline`` (retained) before a clean exit; the Will covers unclean ones."""
        if self.client is not None:
            try:
                await self.client.publish(f"{self.prefix}/status", b"offline", qos=1, retain=True)
            except aiomqtt.MqttError:
                pass

    # scheduler events, on the loop
    def event(self, kind: str, job: Job, **kw) -> None:
        jid = getattr(job.cmd, "id", None)
        if job.source != "mqtt" or not isinstance(job.cmd, P.Say | P.Sing):
            return
        if kind == "go":
            self.publish_event({"type": "audio-start", "id": jid})
        elif kind == "end":
            self.publish_event({"type": "audio-stop", "id": jid})
            self.publish_event({"type": "done", "id": jid})
        elif kind == "fail":
            self.publish_event({"type": "error", "id": jid, "reason": kw["reason"]})
        elif kind == "late":
            self.publish_event({"type": "late", "id": jid, "seconds": kw["seconds"]})
