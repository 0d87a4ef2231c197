"""The client's protocol core without sockets: heartbeats, registration, reconnect with the token,
silent rebind, routing per connectionId, bounded queues."""

from __future__ import annotations

import json
from typing import Any

import pytest

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.signaling import (
    ClientConfig,
    ClientCore,
    Expired,
    Opened,
    PeerLeft,
    Refused,
    Signal,
)
from enkrypted_p2p.signaling._client import (
    CLOSE_TAKEN_OVER,
    ClientState,
    CloseSocket,
    Disconnected,
    GaveUp,
    OpenSocket,
    SendFrame,
)

OFFER = {"sdp": {"type": "offer", "sdp": "v=0"}, "type": "data", "connectionId": "dc_1",
         "serialization": "json", "reliable": True, "label": "dc_1", "metadata": None}


def frames(outputs: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(o.text) for o in outputs if isinstance(o, SendFrame)]


def opened_core(**kw: Any) -> ClientCore:
    core = ClientCore(ClientConfig(**kw), "alice")
    core.connect(0.0)
    core.socket_opened(0.0)
    assert core.frame_received('{"type":"OPEN"}', 0.0) == [Opened("alice")]
    return core


def test_url_and_ids() -> None:
    core = ClientCore(ClientConfig(port=9100, path="/sig", key="k"), "alice")
    assert core.connect(0.0) == [OpenSocket(
        f"ws://127.0.0.1:9100/sig/peerjs?key=k&id=alice&token={core.token}&version=1.5.5")]
    assert ClientCore.id_url(ClientConfig(host="::1")) == "http://[::1]:9000/peerjs/id"
    assert len(core.token) == 25 and core.token != ClientCore(ClientConfig(), "b").token
    for bad in ("", "a  b", "-x", "x/y", "a" * 300):
        with pytest.raises(P2PUsageError):
            ClientCore(ClientConfig(), bad)


def test_heartbeat_every_five_seconds() -> None:
    core = opened_core()
    assert core.next_deadline() == 5.0
    assert frames(core.tick(4.9)) == []
    assert frames(core.tick(5.0)) == [{"type": "HEARTBEAT"}]
    assert core.next_deadline() == 10.0


def test_frames_before_the_socket_are_queued_and_bounded() -> None:
    core = ClientCore(ClientConfig(max_outbox=2), "alice")
    core.connect(0.0)
    core.send("CANDIDATE", "bob", {"connectionId": "dc_1"})  # type: ignore[arg-type]
    core.send("CANDIDATE", "bob", {"connectionId": "dc_1"})  # type: ignore[arg-type]
    with pytest.raises(Exception, match="outbox full"):
        core.send("CANDIDATE", "bob", {})  # type: ignore[arg-type]
    assert len(frames(core.socket_opened(0.0))) == 2


def test_reconnect_reuses_id_and_token_and_accepts_a_silent_rebind() -> None:
    core = opened_core(reconnect_delays=(0.5,), reclaim_grace=1.0)
    token = core.token
    assert core.socket_closed(1.0) == [Disconnected(1.5)]
    out = core.tick(1.5)
    assert out == [OpenSocket(core.socket_url())] and f"token={token}" in out[0].url
    core.socket_opened(1.6)
    assert core.tick(2.5) == []
    assert core.tick(2.6) == [Opened("alice", reclaimed=True)]  # no OPEN came: grace over


def test_refusals_are_final_and_taken_over_does_not_fight_back() -> None:
    core = ClientCore(ClientConfig(), "alice")
    core.connect(0.0)
    core.socket_opened(0.0)
    out = core.frame_received('{"type":"ID-TAKEN","payload":{"msg":"ID is taken"}}', 0.0)
    assert out == [Refused("ID-TAKEN", "ID is taken"), CloseSocket()]
    assert core.socket_closed(0.1) == [] and core.state is ClientState.CLOSED
    other = opened_core()
    assert other.socket_closed(1.0, CLOSE_TAKEN_OVER)[0].kind == "TAKEN-OVER"  # type: ignore[union-attr]
    tired = opened_core(max_reconnects=1, reconnect_delays=(0.1,))
    tired.socket_closed(1.0)
    tired.tick(1.1)
    assert tired.socket_closed(1.2) == [GaveUp(1)]


def test_routing_per_connection_id_with_replay() -> None:
    core = opened_core()
    answer = '{"type":"ANSWER","src":"bob","dst":"alice","payload":{"connectionId":"dc_9","sdp":{}}}'
    assert core.frame_received(answer, 0.0) == []  # unknown connection yet: held
    cid, out = core.offer("bob", {"type": "offer", "sdp": "v=0"}, connection_id="dc_9")
    assert cid == "dc_9" and [type(o) for o in out] == [SendFrame, Signal]
    offer = json.dumps({"type": "OFFER", "src": "carol", "dst": "alice", "payload": OFFER})
    (signal,) = core.frame_received(offer, 0.0)
    assert isinstance(signal, Signal) and signal.offer and signal.offer.reliable
    assert core.frame_received('{"type":"EXPIRE","src":"dan","dst":"alice"}', 0.0) == [Expired("dan")]
    assert core.frame_received('{"type":"LEAVE","src":"carol","dst":"alice"}', 0.0) == [PeerLeft("carol")]
    bad = json.dumps({"type": "OFFER", "src": "x", "payload": {**OFFER, "serialization": "evil"}})
    assert core.frame_received(bad, 0.0) == [] and core.invalid_frames == 1
    assert core.frame_received("not json", 0.0) == [] and core.invalid_frames == 2


def test_held_signals_are_bounded() -> None:
    core = opened_core(max_pending_signals=3)
    for i in range(10):
        core.frame_received(json.dumps({"type": "CANDIDATE", "src": "p", "dst": "alice",
                                        "payload": {"connectionId": f"dc_{i}"}}), 0.0)
    assert core._pending_count == 3
