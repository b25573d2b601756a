"""OSCQuery (Vidvox's OSCQueryProposal): an HTTP endpoint describing our OSC address space.

``GET /`` answers the whole tree as JSON: every address with ``FULL_PATH``, ``TYPE`` (the OSC
type tags, optional arguments included), ``RANGE`` (``MIN``/``MAX`` or ``VALS`` per argument,
``{}`` where nothing is known), ``DESCRIPTION`` and ``ACCESS`` (2: write-only; containers 0);
``GET /a/b`` one node, ``GET /a/b?TYPE`` one attribute (204 when the node has none, 404 for an
unknown node) and ``GET /?HOST_INFO`` the server (``OSC_PORT``, ``OSC_TRANSPORT`` UDP). The
tree is built from :data:`daemon.protocol.OSC`, the table the OSC parser reads, so the two
cannot drift. Off by default (``[oscquery] port = 0``); on ``[osc] host`` beside OSC. Beyond
loopback it is advertised over mDNS as ``_oscjson._tcp`` (as is Wyoming, through
:class:`Mdns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from daemon import protocol as P

log = logging.getLogger("melgand.oscquery")

EXTENSIONS = {
    "ACCESS": True,
    "VALUE": False,
    "RANGE": True,
    "DESCRIPTION": True,
    "TAGS": False,
    "EXTENDED_TYPE": False,
    "UNIT": False,
    "CRITICAL": False,
    "CLIPMODE": False,
    "LISTEN": False,
    "PATH_CHANGED": False,
}
# a request that ends, or never ends, before its header: closed unanswered
_DROPPED = (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError)
VKB_CHANNELS = range(1, 17)  # /vkb_midi/<ch>/note/<pitch> is listed for the 16 MIDI channels


def _range(arg: P.Arg, voices: list[str]) -> dict:
    if arg.values is not None:
        return {"VALS": list(arg.values)}
    if arg.name == "voice" and voices:
        return {"VALS": voices}
    out = {}
    if arg.lo is not None:
        out["MIN"] = arg.lo
    if arg.hi is not None:
        out["MAX"] = arg.hi
    return out


def _method(path: str, spec: P.Address, voices: list[str]) -> dict:
    desc = spec.description
    optional = [a.name for a in spec.args if a.optional]
    if optional:
        desc += f" (optional: {', '.join(optional)})"
    if spec.reply:
        desc += f"; replies {spec.reply} to the sender"
    node = {
        "FULL_PATH": path,
        "TYPE": "".join(a.tag for a in spec.args),
        "ACCESS": 2,
        "DESCRIPTION": desc,
    }
    if spec.args:
        node["RANGE"] = [_range(a, voices) for a in spec.args]
    return node


def tree(voices: list[str] | None = None) -> dict:
    """The OSCQuery namespace of :data:`daemon.protocol.OSC` (and the vkb_midi pattern)."""
    voices = voices or []
    root = {
        "FULL_PATH": "/",
        "ACCESS": 0,
        "DESCRIPTION": "melgand: a live neural voice",
        "CONTENTS": {},
    }
    methods = dict(P.OSC)
    for ch in VKB_CHANNELS:
        for pitch in range(128):
            methods[P.VKB_PATTERN.format(channel=ch, pitch=pitch)] = P.VKB
    for path, spec in methods.items():
        node = root
        parts = path.strip("/").split("/")
        for i, part in enumerate(parts):
            contents = node.setdefault("CONTENTS", {})
            full = "/" + "/".join(parts[: i + 1])
            node = contents.setdefault(part, {"FULL_PATH": full, "ACCESS": 0})
        node.update(_method(path, spec, voices))
    return root


def find(root: dict, path: str) -> dict | None:
    node = root
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "localhost.localdomain")


def lan_address(host: str) -> str | None:
    """The address to advertise for a server bound to ``host``: the host itself, or for a
    wildcard (0.0.0.0, ::, "") the address of the interface that reaches the LAN; None on
    loopback or when no interface has one."""
    if host in ("", "0.0.0.0", "::"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(("224.0.0.251", 5353))  # mDNS's group: picks the interface, sends none
                host = s.getsockname()[0]
        except OSError:
            return None
    else:
        try:
            host = socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0]
        except (OSError, IndexError):
            return None
    return None if is_loopback(host) or host == "0.0.0.0" else host


class Mdns:
    """One service advertised over mDNS (zeroconf), registered in the background (probing
    takes a second) and withdrawn at stop."""

    def __init__(
        self, kind: str, name: str, address: str, port: int, properties: dict | None = None
    ):
        self.kind, self.name, self.address, self.port = kind, name, address, port
        self.properties = properties or {}
        self.zc = self.info = None
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._register())

    async def _register(self) -> None:
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        try:
            self.zc = AsyncZeroconf()
            self.info = AsyncServiceInfo(
                self.kind,
                f"{self.name}.{self.kind}",
                addresses=[socket.inet_aton(self.address)],
                port=self.port,
                properties=self.properties,
                server=f"{socket.gethostname()}.local.",
            )
            await self.zc.async_register_service(self.info, allow_name_change=True)
            log.info("mDNS: %s advertised at %s:%d", self.kind, self.address, self.port)
        except Exception as e:  # no multicast on this network: serve on, unadvertised
            log.warning(
                "mDNS: cannot advertise %s (%s); clients must be given the address", self.kind, e
            )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.zc is not None:
            with contextlib.suppress(Exception):
                if self.info is not None:
                    await self.zc.async_unregister_service(self.info)
                await self.zc.async_close()


def advertise(kind: str, host: str, port: int, properties: dict | None = None) -> Mdns | None:
    """Advertise a server bound to ``host``:``port`` beyond loopback (None: on loopback)."""
    address = lan_address(host)
    if address is None:
        log.info("mDNS: %s not advertised (%s is loopback or has no LAN address)", kind, host)
        return None
    m = Mdns(kind, f"melgand-{socket.gethostname()}", address, port, properties)
    m.start()
    return m


class OscQueryServer:
    """The HTTP endpoint (asyncio, one request a connection, ``Connection: close``) for the
    OSC server at ``osc_addr``; ``voices`` names the voices that ``/voice`` takes."""

    def __init__(self, osc_addr: tuple[str, int], voices: Callable[[], Iterable[str]]):
        self.osc_addr, self.voices = osc_addr, voices
        self.server: asyncio.Server | None = None
        self.mdns: Mdns | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.host = host
        self.server = await asyncio.start_server(self._client, host, port)
        addr = self.server.sockets[0].getsockname()[:2]
        self.mdns = advertise("_oscjson._tcp.local.", host, addr[1])
        return addr

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.mdns is not None:
            await self.mdns.stop()

    def host_info(self) -> dict:
        osc_host, osc_port = self.osc_addr
        out = {
            "NAME": "melgand",
            "OSC_PORT": osc_port,
            "OSC_TRANSPORT": "UDP",
            "EXTENSIONS": EXTENSIONS,
        }
        if osc_host not in ("0.0.0.0", "::", ""):  # else: the address this was asked at
            out["OSC_IP"] = osc_host
        return out

    def answer(self, target: str) -> tuple[int, dict | None]:
        """(HTTP status, JSON body) for a request target such as ``/say?TYPE``."""
        u = urlsplit(target)
        query = unquote(u.query)
        if query == "HOST_INFO":
            return 200, self.host_info()
        voices = sorted(self.voices())
        node = find(tree(voices), unquote(u.path))
        if node is None:
            return 404, None
        if query:
            attr = query.split("&")[0].split("=")[0]
            return (200, {attr: node[attr]}) if attr in node else (204, None)
        return 200, node

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            if method not in ("GET", "HEAD"):
                status, body = 405, {"error": f"{method} is not served; use GET"}
            else:
                status, body = self.answer(target)
        except _DROPPED:
            writer.close()
            return
        except ValueError:
            status, body, method = 400, {"error": "not an HTTP request line"}, "GET"
        except Exception as e:  # a bug must not end the server: say so, serve on
            log.exception("OSCQuery request")
            status, body, method = 500, {"error": f"internal error ({type(e).__name__})"}, "GET"
        data = json.dumps(body).encode() if body is not None else b""
        reason = HTTPStatus(status).phrase
        headers = [
            f"HTTP/1.1 {status} {reason}",
            "Connection: close",
            "Access-Control-Allow-Origin: *",
        ]
        if status != 204:
            headers += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
        if method == "GET" and status != 204:
            writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
