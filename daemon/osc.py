"""OSC over UDP: our own asyncio datagram protocol around python-osc's parser and builder.

Handlers never block and never sleep on a timetag: a datagram is parsed, each message turned
into a command (or a ``/fail`` reply), and the command handed to the scheduler with its
bundle time. Queries (``/status``, ``/version``) are answered at once; replies go to the
sender's address. Clients that sent ``/notify 1`` also get ``/n_go``, ``/n_end`` and
``/late``.
"""

from __future__ import annotations

import asyncio
import logging

from daemon import protocol as P
from daemon.scheduler import Job

log = logging.getLogger("melgand.osc")


class OscServer(asyncio.DatagramProtocol):
    def __init__(self, daemon):
        self.daemon = daemon
        self.transport: asyncio.DatagramTransport | None = None
        self.notify: set[tuple] = set()
        self.received = 0
        self.failed = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, addr, address: str, *args) -> None:
        if self.transport is not None and not self.transport.is_closing() and addr is not None:
            self.transport.sendto(P.reply(address, *args), addr)

    def fail(self, addr, address: str, reason: str, jid: int | None = None) -> None:
        self.failed += 1
        log.info("/fail %s from %s: %s", address, addr, reason)
        self.send(addr, "/fail", address, reason, *([jid] if jid is not None else []))

    def datagram_received(self, data: bytes, addr) -> None:
        self.received += 1
        try:
            packets = P.parse_datagram(data)
        except P.ProtocolError as e:
            self.fail(addr, "?", str(e))
            return
        for pk in packets:
            try:
                cmd = P.command(pk.address, pk.args)
            except P.ProtocolError as e:
                self.fail(addr, pk.address, str(e))
                continue
            self.handle(cmd, pk, addr)

    def handle(self, cmd, pk: P.Packet, addr) -> None:
        d = self.daemon
        if isinstance(cmd, P.Simple) and cmd.name == "status":
            s = d.scheduler.status()
            self.send(addr, "/status.reply", 1, s["active_voices"], s["queued_jobs"],
                      s["underruns"], s["avg_load"], s["peak_load"], s["nominal_rate"],
                      s["actual_rate"])  # fmt: skip
        elif isinstance(cmd, P.Simple) and cmd.name == "version":
            self.send(addr, "/version.reply", d.version)
        elif isinstance(cmd, P.Notify):
            (self.notify.add if cmd.on else self.notify.discard)(addr)
            self.send(addr, "/done", pk.address)
        elif isinstance(cmd, P.SwitchVoice):
            try:
                d.switch_voice(cmd.name)
                self.send(addr, "/done", pk.address)
            except ValueError as e:
                self.fail(addr, pk.address, str(e))
        else:
            d.scheduler.submit(Job(cmd, (addr, pk.address), "osc", at=pk.at))

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
