"""Choose exactly one plugin per slot: lock, else explicit choice, else the only candidate.

There is no implicit "highest version wins" (DESIGN.md §3 step 3): two candidates and nothing that
chooses between them is an error listing both.
"""

from __future__ import annotations

__all__ = ["Selected", "select"]

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from packaging.utils import canonicalize_name

from ..errors import AmbiguousPluginError, LockMismatchError, NoPluginError
from .discover import Candidate, Discovery


class Selected(NamedTuple):
    """The candidate chosen for a slot and why (shown by ``plugins graph``)."""

    candidate: Candidate
    reason: str


def select(
    discovery: Discovery,
    slots: Iterable[str],
    *,
    choices: Mapping[str, tuple[str, str]],
    locked: Mapping[str, str] | None = None,
) -> dict[str, Selected]:
    """Select one candidate for each slot.

    ``choices`` maps slot -> (plugin or distribution name, where the choice came from);
    ``locked`` maps slot -> distribution name pinned by the lock.
    """
    plan: dict[str, Selected] = {}
    for slot in slots:
        found = discovery.for_slot(slot)
        if locked is not None:
            plan[slot] = _from_lock(slot, found, locked, choices.get(slot))
        elif slot in choices:
            name, origin = choices[slot]
            plan[slot] = Selected(_named(slot, found, name, origin), f"chosen by {origin}")
        elif len(found) == 1:
            plan[slot] = Selected(found[0], "only candidate")
        else:
            raise _none_or_many(slot, found)
    return plan


def _matches(candidate: Candidate, name: str) -> bool:
    return candidate.name == name or canonicalize_name(candidate.dist_name) == canonicalize_name(
        name
    )


def _named(slot: str, found: tuple[Candidate, ...], name: str, origin: str) -> Candidate:
    hits = [c for c in found if _matches(c, name)]
    if len(hits) == 1:
        return hits[0]
    listing = _listing(found) or "none installed"
    if not hits:
        raise NoPluginError(
            f"{slot}: {origin} asks for {name!r}, which is not installed (candidates: {listing})",
            plugin=name,
            fix=f"install {name!r} or choose one of the candidates",
        )
    raise AmbiguousPluginError(
        f"{slot}: {name!r} matches several installed plugins: {_listing(tuple(hits))}",
        plugin=name,
        fix="uninstall the duplicate so one copy of the distribution remains",
    )


def _from_lock(
    slot: str,
    found: tuple[Candidate, ...],
    locked: Mapping[str, str],
    choice: tuple[str, str] | None,
) -> Selected:
    if slot not in locked:
        raise LockMismatchError(
            f"{slot}: the lock pins no plugin for this slot",
            fix="re-create the lock with `enkrypted plugins lock`",
        )
    dist = locked[slot]
    if choice is not None and not any(_matches(c, choice[0]) and _matches(c, dist) for c in found):
        raise LockMismatchError(
            f"{slot}: {choice[1]} asks for {choice[0]!r} but the lock pins {dist!r}",
            plugin=choice[0],
            fix="drop the choice, or re-lock after changing it",
        )
    return Selected(_named(slot, found, dist, "the lock"), "pinned by the lock")


def _none_or_many(slot: str, found: tuple[Candidate, ...]) -> Exception:
    if not found:
        return NoPluginError(
            f"{slot}: no plugin installed for this slot",
            fix=f"install a {slot} plugin, e.g. `enkrypted plugins install NAME --index URL`",
        )
    return AmbiguousPluginError(
        f"{slot}: {len(found)} candidates and nothing chooses between them: {_listing(found)}",
        fix=f"pass --{slot} NAME, set [plugins] {slot} = NAME in the config, or use a lock",
    )


def _listing(found: tuple[Candidate, ...]) -> str:
    return ", ".join(c.label for c in found)
