"""Conformance of p2p contract 2.0: two :class:`~enkrypted_shell.contracts.Endpoint` objects of
one transport, driven through the contract only (docs/hooks.md, "p2p contract 2.0").

    async def test_my_transport_conforms():
        first = await service.open_endpoint(peer_id="first")
        second = await service.open_endpoint(peer_id="second")
        await check_endpoint_pair(first, second)   # closes both

Every wait is bounded by ``timeout``; a rule broken raises :class:`ConformanceError` naming it.
"""

from __future__ import annotations

__all__ = ["check_endpoint_pair", "check_transport_service_v2"]

import asyncio
import secrets
from collections.abc import Awaitable
from typing import TypeVar

from ..contracts import (
    Endpoint,
    LinkBroken,
    LinkClosedLocally,
    LinkV2,
    LocalMisuse,
    PeerUnavailable,
    implementation_problems,
    service_problems,
)
from ._checks import ConformanceError

_T = TypeVar("_T")
_BURST = 50
"""Small PDUs sent each way to check order (STYLE: every loop bounded)."""


def _require(condition: bool, rule: str) -> None:
    if not condition:
        raise ConformanceError(rule)


def check_transport_service_v2(service: object) -> None:
    """The service has the shape of p2p 2.0 (``open_endpoint``, ``open_chat``, ``name``,
    ``capabilities``); behaviour is :func:`check_endpoint_pair`'s."""
    problems = service_problems("p2p", "2.0", service)
    _require(not problems, f"p2p contract 2.0: {'; '.join(problems)}")
    name = getattr(service, "name", None)
    _require(isinstance(name, str) and bool(name), "p2p contract 2.0: name must be a non-empty string")
    capabilities = getattr(service, "capabilities", None)
    _require(isinstance(capabilities, frozenset) and all(isinstance(c, str) for c in capabilities),
             "p2p contract 2.0: capabilities must be a frozenset of strings")


async def check_endpoint_pair(first: Endpoint, second: Endpoint, *, timeout: float = 30.0) -> None:
    """``first`` dials ``second`` by id; the link carries PDUs ordered and unchanged both ways up
    to ``max_pdu_bytes``, refuses a larger one as local misuse, tells who closed it, and an
    unknown id is :class:`PeerUnavailable`.  Ends with ``first.aclose()`` (connect afterwards:
    :class:`LinkClosedLocally`) and closes ``second`` too."""
    try:
        for endpoint in (first, second):
            problems = implementation_problems(endpoint, Endpoint)
            _require(not problems, f"Endpoint: {'; '.join(problems)}")
        _require(bool(first.local_id) and first.local_id != second.local_id,
                 "local_id is empty or both endpoints share it")
        ab, ba = await _connected(first, second, timeout)
        await _exchange(ab, ba, timeout)
        await _oversize_is_local_misuse(ab, ba, timeout)
        await _close_says_who(ab, ba, timeout)
        await _unknown_peer(first, timeout)
        await _after_aclose(first, second, timeout)
    finally:
        await _bounded(first.aclose(), timeout, "aclose")
        await _bounded(second.aclose(), timeout, "aclose")


async def _bounded(step: Awaitable[_T], timeout: float, what: str) -> _T:
    try:
        return await asyncio.wait_for(step, timeout)
    except TimeoutError:
        raise ConformanceError(f"{what} did not finish within {timeout} s") from None


async def _connected(first: Endpoint, second: Endpoint, timeout: float) -> tuple[LinkV2, LinkV2]:
    incoming = second.incoming()
    accepted = asyncio.ensure_future(_bounded(anext(incoming), timeout, "incoming()"))
    try:
        ab = await _bounded(first.connect(second.local_id, timeout), timeout + 5, "connect")
        ba = await accepted
    finally:
        accepted.cancel()
    for link in (ab, ba):
        problems = implementation_problems(link, LinkV2)
        _require(not problems, f"LinkV2: {'; '.join(problems)}")
        _require(link.close_reason is None, "close_reason is set on an open link")
        _require(link.max_pdu_bytes > 0, "max_pdu_bytes is not positive")
    _require(ab.peer_id == second.local_id, "the dialled link's peer_id is not the dialled id")
    _require(ba.peer_id == first.local_id, "the accepted link's peer_id is not the dialler's id")
    return ab, ba


async def _exchange(ab: LinkV2, ba: LinkV2, timeout: float) -> None:
    for sender, receiver in ((ab, ba), (ba, ab)):
        sent = [b"%d" % i for i in range(_BURST)]
        sent += [secrets.token_bytes(1), secrets.token_bytes(sender.max_pdu_bytes)]
        for pdu in sent:
            await _bounded(sender.send(pdu), timeout, "send")
        got = [await _bounded(receiver.receive(), timeout, "receive") for _ in sent]
        _require([len(g) for g in got] == [len(s) for s in sent] and got == sent,
                 "a link reordered, split, joined or changed PDUs (up to max_pdu_bytes)")


async def _oversize_is_local_misuse(ab: LinkV2, ba: LinkV2, timeout: float) -> None:
    try:
        await _bounded(ab.send(bytes(ab.max_pdu_bytes + 1)), timeout, "send")
    except LocalMisuse:
        pass
    else:
        raise ConformanceError("a PDU above max_pdu_bytes was not refused with LocalMisuse")
    await _bounded(ab.send(b"still open"), timeout, "send")
    _require(await _bounded(ba.receive(), timeout, "receive") == b"still open",
             "a refused oversize PDU broke the link")


async def _close_says_who(ab: LinkV2, ba: LinkV2, timeout: float) -> None:
    await _bounded(ab.close(), timeout, "close")
    await _bounded(ab.close(), timeout, "close")  # idempotent
    try:
        await _bounded(ba.receive(), timeout, "receive after the peer closed")
    except LinkBroken:
        pass
    else:
        raise ConformanceError("receive on a link the peer closed did not raise LinkBroken")
    for step in (ab.send(b"late"), ab.receive()):
        try:
            await _bounded(step, timeout, "use after close")
        except LinkClosedLocally:
            continue
        raise ConformanceError("using a link we closed did not raise LinkClosedLocally")
    _require(bool(ab.close_reason) and bool(ba.close_reason),
             "close_reason is not set on both ends after a close")


async def _unknown_peer(first: Endpoint, timeout: float) -> None:
    nobody = "nobody-" + secrets.token_hex(6)
    try:
        await _bounded(first.connect(nobody, timeout), timeout + 5, "connect to an unknown id")
    except PeerUnavailable:
        return
    raise ConformanceError("connect to an unknown id did not raise PeerUnavailable")


async def _after_aclose(first: Endpoint, second: Endpoint, timeout: float) -> None:
    await _bounded(first.aclose(), timeout, "aclose")
    await _bounded(first.aclose(), timeout, "aclose")  # idempotent
    try:
        await _bounded(first.connect(second.local_id, timeout), timeout, "connect after aclose")
    except LinkClosedLocally:
        pass
    else:
        raise ConformanceError("connect after aclose did not raise LinkClosedLocally")
    leftovers = await _bounded_iter(first, timeout)
    _require(not leftovers, "incoming() yielded a link after aclose")


async def _bounded_iter(endpoint: Endpoint, timeout: float) -> list[LinkV2]:
    """What ``incoming()`` still yields after ``aclose`` (it must end, and promptly)."""
    async def drain() -> list[LinkV2]:
        return [link async for link in endpoint.incoming()]

    return await _bounded(drain(), timeout, "incoming() after aclose")
