"""OSC over UDP: our own asyncio datagram reader around python-osc's parser and builder.

Handlers never block and never sleep on a timetag: a datagram is parsed, each message turned
into a command (or a ``/fail`` reply), and the command handed to the scheduler with its
bundle time. Queries (``/status``, ``/version``) are answered at once; replies go to the
sender's address. Clients that sent ``/notify 1`` also get ``/n_go``, ``/n_end`` and
``/late``.

Arrival times come from the kernel (``SO_TIMESTAMPNS``) where it gives them, so that an
immediate message is placed by when it arrived, not by when the event loop got to it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import platform
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable

from daemon import protocol as P
from daemon.jobs import Job

log = logging.getLogger("melgand.osc")


def _stamp_option() -> int | None:
    """SO_TIMESTAMPNS: Python's socket module does not name it, so on Linux it is the
    kernel's own number (35 in asm-generic, which x86, arm and risc-v use; other values on
    alpha, parisc and sparc, where none is tried). None elsewhere: arrival is then when the
    event loop reads the datagram."""
    if hasattr(socket, "SO_TIMESTAMPNS"):
        return socket.SO_TIMESTAMPNS
    if sys.platform.startswith("linux") and not platform.machine().startswith(
        ("alpha", "parisc", "sparc")
    ):
        return 35
    return None


_STAMP = _stamp_option()
# what /status.reply carries after its leading 1, in order (as protocol.OSC describes it)
STATUS_REPLY = (
    "active_voices",
    "queued_jobs",
    "underruns",
    "avg_load",
    "peak_load",
    "nominal_rate",
    "actual_rate",
)


class OscServer:
    """``[osc]`` settings (``cfg``) and what the messages call: ``submit`` a job, ``busy`` (why
    a new one is refused, or None), ``status`` (the scheduler's), ``switch_voice`` (by name; a
    coroutine)."""

    def __init__(
        self,
        cfg,
        *,
        submit: Callable[[Job], None],
        busy: Callable[[], str | None],
        status: Callable[[], dict],
        switch_voice: Callable[[str], Awaitable[None]],
        version: str = "",
        max_text: int = P.MAX_TEXT,
    ):
        self.submit, self.busy, self.status = submit, busy, status
        self.switch_voice, self.version, self.max_text = switch_voice, version, max_text
        self.sock: socket.socket | None = None
        self.stamped = False  # whether arrivals are the kernel's receive times (set by open)
        self.notify: set[tuple] = set()
        self._tasks: set[asyncio.Task] = set()  # voice switches in flight, kept referenced
        try:
            self.allow = [ipaddress.ip_network(n, strict=False) for n in cfg.allow]
        except ValueError as e:
            raise ValueError(f"[osc] allow: {e}") from None
        self.max_rate = cfg.max_rate
        self.buckets: dict[tuple, list[float]] = {}  # client -> [tokens, last time]

    def _allowed(self, addr) -> bool:
        try:
            ip = ipaddress.ip_address(addr[0])
        except ValueError:
            return False
        return any(ip in net for net in self.allow)

    def _within_rate(self, addr, now: float) -> bool:
        """A token bucket per client: ``max_rate`` a second, bursts of as many."""
        b = self.buckets.setdefault(addr, [float(self.max_rate), now])
        b[0] = min(float(self.max_rate), b[0] + (now - b[1]) * self.max_rate)
        b[1] = now
        if b[0] < 1.0:
            return False
        b[0] -= 1.0
        if len(self.buckets) > 4096:  # forget idle clients
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 10}
        return True

    def open(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> tuple[str, int]:
        self.loop = loop
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # ride out bursts
        self.stamped = False
        if _STAMP is not None:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, _STAMP, 1)
                self.stamped = True
            except OSError as e:
                log.warning("OSC: no kernel arrival times (%s): immediate messages are "
                            "placed by when the event loop reads them", e)  # fmt: skip
        self.sock.bind((host, port))
        loop.add_reader(self.sock.fileno(), self._readable)
        return self.sock.getsockname()[:2]

    def close(self) -> None:
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        while self.sock is not None:
            try:
                data, anc, _, addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. ICMP port unreachable from an earlier reply
                log.debug("OSC socket: %s", e)
                continue
            arrival = time.monotonic()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == _STAMP and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    arrival -= max(0.0, time.time() - (sec + nsec * 1e-9))
            self.datagram_received(data, addr, arrival)

    def send(self, addr, address: str, *args) -> None:
        if self.sock is not None and addr is not None:
            try:
                self.sock.sendto(P.reply(address, *args), addr)
            except OSError as e:  # a full buffer or a vanished client must not stop us
                log.debug("OSC reply to %s failed: %s", addr, e)

    def fail(self, addr, address: str, reason: str, jid: int | None = None) -> None:
        log.info("/fail %s from %s: %s", address, addr, reason)
        self.send(addr, "/fail", address, reason, *([jid] if jid is not None else []))

    def datagram_received(self, data: bytes, addr, arrival: float | None = None) -> None:
        if not self._allowed(addr):  # not answered: no replies to strangers
            log.debug("OSC from %s dropped: not in [osc] allow", addr)
            return
        if not self._within_rate(addr, time.monotonic()):
            self.fail(addr, "?", f"rate limit: [osc] max_rate is {self.max_rate} a second")
            return
        try:
            packets = P.parse_datagram(data)
        except P.ProtocolError as e:
            self.fail(addr, "?", str(e))
            return
        for pk in packets:
            try:
                cmd = P.command(pk.address, pk.args, self.max_text)
            except P.ProtocolError as e:
                self.fail(addr, pk.address, str(e))
                continue
            self.handle(cmd, pk, addr, arrival)

    def handle(self, cmd, pk: P.Packet, addr, arrival: float | None = None) -> None:
        if isinstance(cmd, P.Simple) and cmd.name == "status":
            s = self.status()
            self.send(addr, "/status.reply", 1, *(s[k] for k in STATUS_REPLY))
        elif isinstance(cmd, P.Simple) and cmd.name == "version":
            self.send(addr, "/version.reply", self.version)
        elif isinstance(cmd, P.Notify):
            (self.notify.add if cmd.on else self.notify.discard)(addr)
            self.send(addr, "/done", pk.address)
        elif isinstance(cmd, P.SwitchVoice):  # the voice loads off the loop; OSC serves on
            task = self.loop.create_task(self.switch_voice(cmd.name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda t: self._switched(t, addr, pk.address))
        elif isinstance(cmd, P.Say | P.NoteOn | P.Sing) and (full := self.busy()):
            self.fail(addr, pk.address, full, getattr(cmd, "id", None))
        else:
            self.submit(Job(cmd, (addr, pk.address), "osc", arrival or 0.0, pk.at))

    def _switched(self, task: asyncio.Task, addr, address: str) -> None:
        """``/done`` for a voice switch, or ``/fail`` saying why it did not happen."""
        if task.cancelled():  # stopping
            return
        e = task.exception()
        if e is None:
            self.send(addr, "/done", address)
        elif isinstance(e, ValueError):
            self.fail(addr, address, str(e))
        else:
            self.fail(addr, address, f"cannot load the voice ({type(e).__name__}: {e})")

    # scheduler events, on the loop
    def event(self, kind: str, job: Job, **kw) -> None:
        addr, address = job.ctx
        jid = getattr(job.cmd, "id", None)
        if (kind == "end" and isinstance(job.cmd, P.Say | P.Sing)) or (
            kind == "end" and isinstance(job.cmd, P.NoteOn) and jid is not None
        ):
            self.send(addr, "/done", address, *([jid] if jid is not None else []))
        elif kind == "fail":
            self.fail(addr, address, kw["reason"], jid)
        elif kind == "synced":
            self.send(addr, "/synced", job.cmd.id)
        for a in self.notify:
            if kind == "go" and jid is not None:
                self.send(a, "/n_go", jid)
            elif kind == "end" and jid is not None:
                self.send(a, "/n_end", jid)
            elif kind == "late":
                self.send(a, "/late", float(kw["seconds"]))
