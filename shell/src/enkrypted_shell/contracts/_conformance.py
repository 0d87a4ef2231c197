"""Does an object implement the Protocol of the contract version its plugin declares?

``isinstance(obj, Protocol)`` is not enough: it checks names only (not async-ness or arity), and
checked against the *newest* Protocol it would refuse every plugin built against an older MINOR the
moment a member is added — breaking the versioning rule it enforces. Here each declared
``MAJOR.MINOR`` is checked against the Protocol published for exactly that version, member by
member, so a mismatch that would only fail at first use is refused at load time, named.
"""

from __future__ import annotations

__all__ = ["Member", "contract_members", "implementation_problems", "supports"]

import inspect
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

_PROTOCOL_NOISE = frozenset(
    {"_is_protocol", "_is_runtime_protocol", "_abc_impl", "__protocol_attrs__",
     "__non_callable_proto_members__"}
)


class Member(NamedTuple):
    name: str
    kind: Literal["property", "method", "coroutine"]
    signature: inspect.Signature | None


def contract_members(protocol: type) -> tuple[Member, ...]:
    """The members a Protocol defines (its own and its Protocol bases'), in name order."""
    found: dict[str, Member] = {}
    for klass in reversed(protocol.__mro__):
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if name.startswith("__") or name in _PROTOCOL_NOISE:
                continue
            if isinstance(value, property):
                found[name] = Member(name, "property", None)
            elif inspect.isfunction(value):
                kind: Literal["method", "coroutine"] = (
                    "coroutine" if inspect.iscoroutinefunction(value) else "method"
                )
                found[name] = Member(name, kind, _without_self(inspect.signature(value)))
        for name in getattr(klass, "__annotations__", {}):
            if not name.startswith("_"):
                found.setdefault(name, Member(name, "property", None))
    return tuple(found[name] for name in sorted(found))


def implementation_problems(obj: object, protocol: type) -> list[str]:
    """Every way ``obj`` fails ``protocol``: missing members, sync where async is required (and
    the reverse), and call shapes the contract's callers would break on. Empty means it fits."""
    problems = []
    for member in contract_members(protocol):
        try:
            value = inspect.getattr_static(obj, member.name)
        except AttributeError:
            problems.append(f"missing {member.kind} {member.name!r}")
            continue
        if member.kind == "property":
            continue
        bound = getattr(obj, member.name, None)
        if not callable(bound):
            problems.append(f"{member.name!r} is not callable")
            continue
        problems.extend(_call_shape_problems(member, bound, value))
    return problems


def supports(obj: object, feature: type) -> bool:
    """Feature detection for an optional capability protocol (added in a MINOR version)."""
    return not implementation_problems(obj, feature)


def _call_shape_problems(member: Member, bound: Callable[..., Any], raw: object) -> list[str]:
    is_coroutine = inspect.iscoroutinefunction(bound) or inspect.iscoroutinefunction(raw)
    if member.kind == "coroutine" and not is_coroutine:
        return [f"{member.name!r} must be async (the contract awaits it)"]
    if member.kind == "method" and is_coroutine:
        return [f"{member.name!r} must not be async (the contract calls it synchronously)"]
    assert member.signature is not None
    try:
        actual = inspect.signature(bound)
    except (TypeError, ValueError):
        return []  # a builtin without a signature: nothing more can be checked
    args: list[None] = []
    kwargs: dict[str, None] = {}
    for param in member.signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            args.append(None)
        elif param.kind == param.KEYWORD_ONLY:
            kwargs[param.name] = None
    try:
        actual.bind(*args, **kwargs)
    except TypeError as exc:
        return [f"{member.name!r} cannot be called as the contract calls it {member.signature}: {exc}"]
    return []


def _without_self(signature: inspect.Signature) -> inspect.Signature:
    params = list(signature.parameters.values())[1:]
    return signature.replace(parameters=params)
