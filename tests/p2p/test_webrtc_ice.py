"""The aioice adapter (scoped host addresses) and the remote candidate policy."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.webrtc import CandidatePolicy, WebRTCSettings, _ice, host_addresses
from enkrypted_p2p.webrtc._ice import filter_sdp_candidates, split_sdp_candidates


def test_pinned_addresses_apply_only_inside_the_block_and_its_tasks() -> None:
    _ice.uninstall()
    stock = aioice.ice.get_host_addresses(True, True)
    assert "127.0.0.1" not in stock  # why the adapter exists
    with host_addresses(["127.0.0.1", "::1"]):
        assert _ice.installed()
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]

        async def in_task() -> list[str]:
            return aioice.ice.get_host_addresses(True, False)

        async def both() -> tuple[list[str], list[str]]:
            inside = await asyncio.ensure_future(in_task())  # copies the context
            return inside, await asyncio.get_running_loop().run_in_executor(
                None, aioice.ice.get_host_addresses, True, False)  # a thread: no context

        inside, thread = asyncio.run(both())
        assert inside == ["127.0.0.1"] and thread == stock_v4(stock)
    # outside: aioice's own answer, unchanged, and the original is kept
    assert aioice.ice.get_host_addresses(True, True) == stock
    assert aioice.ice.get_host_addresses.__wrapped__ is not None  # type: ignore[attr-defined]
    _ice.uninstall()
    assert not _ice.installed() and aioice.ice.get_host_addresses(True, True) == stock


def stock_v4(addresses: list[str]) -> list[str]:
    return [a for a in addresses if ":" not in a]


def test_host_addresses_must_be_ip_addresses() -> None:
    with pytest.raises(ValueError), host_addresses(["localhost"]):
        pass
    with pytest.raises(P2PUsageError):
        WebRTCSettings(host_addresses=("my-laptop",))
    with pytest.raises(P2PUsageError):
        WebRTCSettings(relay_only=True)  # relay-only without a TURN server


SDP = "\r\n".join([
    "v=0", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host",
    "a=candidate:2 1 udp 2130706431 192.168.1.20 5001 typ host",
    "a=candidate:3 1 udp 2130706431 f3a9c2.local 5002 typ host",
    "a=candidate:4 1 tcp 2130706431 127.0.0.1 5003 typ host tcptype passive",
    "a=candidate:5 1 udp 1694498815 203.0.113.9 5004 typ srflx raddr 0.0.0.0 rport 0",
    "a=end-of-candidates", ""])


def test_policy_keeps_only_allowed_udp_ip_candidates() -> None:
    loopback = CandidatePolicy.of(["127.0.0.0/8", "::1/128"])
    filtered, dropped = filter_sdp_candidates(SDP, loopback)
    assert dropped == 4 and "127.0.0.1 5000" in filtered and "192.168" not in filtered
    assert ".local" not in filtered and "a=end-of-candidates" in filtered
    anywhere = CandidatePolicy.of([])
    filtered, dropped = filter_sdp_candidates(SDP, anywhere)
    assert dropped == 2  # mDNS and TCP are never used, whatever the networks
    assert anywhere.allows("203.0.113.9") and not anywhere.allows("x.local")


def test_our_sdp_is_split_into_bare_sdp_and_trickled_candidates() -> None:
    bare, candidates, complete = split_sdp_candidates(SDP)
    assert "a=candidate" not in bare and "a=end-of-candidates" not in bare and "a=mid:0" in bare
    assert len(candidates) == 5 and candidates[0].startswith("candidate:1 ") and complete
