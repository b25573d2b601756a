"""OSCQuery with real parts: a started daemon's HTTP endpoint read with urllib, and the
namespace it serves checked against the OSC parser (generated from the same table)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import test_daemon
from test_daemon import free_port

from daemon import oscquery
from daemon import protocol as P

served = test_daemon.served  # the daemons fixture, started and stopped as there


def _get(base: str, path: str):
    with urllib.request.urlopen(base + path, timeout=10) as r:
        body = r.read()
        return r.status, json.loads(body) if body else None


def _methods(node: dict):
    if "TYPE" in node:
        yield node
    for child in node.get("CONTENTS", {}).values():
        yield from _methods(child)


def _example(tag: str, rng: dict, edge: str):
    if "VALS" in rng:
        return rng["VALS"][0 if edge == "MIN" else -1]
    if tag == "s":
        return "hello"
    v = rng.get(edge, 1)
    return float(v) if tag == "f" else int(v)


def test_every_described_address_parses_as_described():
    """What OSCQuery says of each address is what the parser takes: the edges of each range
    are accepted, beyond them refused, and every table entry is there."""
    root = oscquery.tree(["default"])
    methods = list(_methods(root))
    paths = {m["FULL_PATH"] for m in methods}
    assert set(P.OSC) <= paths and "/vkb_midi/1/note/60" in paths
    for m in methods:
        tags, ranges = m["TYPE"], m.get("RANGE", [])
        assert m["ACCESS"] == 2 and m["DESCRIPTION"] and len(ranges) == len(tags)
        for edge in ("MIN", "MAX"):
            args = [_example(t, r, edge) for t, r in zip(tags, ranges, strict=True)]
            P.command(m["FULL_PATH"], args)  # raises if the two disagree
        for i, (t, r) in enumerate(zip(tags, ranges, strict=True)):
            if "MAX" in r and t == "f":
                args = [_example(t2, r2, "MIN") for t2, r2 in zip(tags, ranges, strict=True)]
                args[i] = float(r["MAX"]) + 1
                with pytest.raises(P.ProtocolError, match="outside"):
                    P.command(m["FULL_PATH"], args)
    assert P.OSC["/param/volume"].args[0].hi == P.PARAMS["volume"][1]


def test_served_over_http(served):
    port = free_port()
    r = served(sink="null", **{"oscquery.port": port})
    assert r.d.oscquery_addr == ("127.0.0.1", port) and r.d.oscquery.mdns is None
    base = f"http://127.0.0.1:{port}"
    status, root = _get(base, "/")
    assert status == 200 and root["FULL_PATH"] == "/"
    say = root["CONTENTS"]["say"]
    assert say["TYPE"] == "si" and say["ACCESS"] == 2 and "speak" in say["DESCRIPTION"]
    mnote = root["CONTENTS"]["mnote"]
    assert mnote["RANGE"][:2] == [{"MIN": 0, "MAX": 127}, {"MIN": 0, "MAX": 127}]
    assert mnote["CONTENTS"]["rel"]["FULL_PATH"] == "/mnote/rel"
    assert root["CONTENTS"]["voice"]["RANGE"] == [{"VALS": ["default", "joe"]}]
    assert root["CONTENTS"]["notify"]["RANGE"] == [{"VALS": [0, 1]}]
    vol = _get(base, "/param/volume")[1]
    assert vol["TYPE"] == "f" and vol["RANGE"] == [{"MIN": 0.0, "MAX": 4.0}]
    assert _get(base, "/param/volume?RANGE") == (200, {"RANGE": [{"MIN": 0.0, "MAX": 4.0}]})
    assert _get(base, "/param?TYPE")[0] == 204  # a container has no type
    status, info = _get(base, "/?HOST_INFO")
    assert info["OSC_PORT"] == r.d.osc_addr[1] and info["OSC_TRANSPORT"] == "UDP"
    assert info["OSC_IP"] == "127.0.0.1" and info["EXTENSIONS"]["RANGE"] is True
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(base, "/no/such/address")
    assert e.value.code == 404
    e.value.close()
    req = urllib.request.Request(base + "/", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
    e.value.close()
    # what it describes is what the daemon takes
    r.send("/param/volume", 0.5)
    r.send("/status")
    assert r.recv("/status.reply")[1][0] == 1


def test_off_by_default(served):
    r = served(sink="null")
    assert r.d.cfg.oscquery.port == 0 and r.d.oscquery is None
