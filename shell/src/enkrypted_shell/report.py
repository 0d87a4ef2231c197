"""Human and JSON views of a plan (``plugins verify|graph``) and of the load log (``audit``)."""

from __future__ import annotations

__all__ = ["audit_report", "graph_report", "plan_rows"]

from typing import Any

from packaging.requirements import Requirement

from ._version import __version__
from .contracts import CONTRACT_VERSIONS
from .loadlog import LoadLog
from .runtime import Plan
from .skew import installed_version


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    rows = []
    for slot, p in plan.plugins.items():
        c = p.candidate
        rows.append(
            {
                "slot": slot,
                "plugin": c.name,
                "distribution": c.dist_name,
                "version": c.version,
                "contract": str(c.manifest.contract),
                "content_digest": p.digest or "UNVERIFIED (dev)",
                "files_checked": p.integrity.files_checked if p.integrity else 0,
                "selected_because": p.reason,
            }
        )
    return rows


def graph_report(plan: Plan) -> tuple[dict[str, Any], str]:
    lines = [
        f"enkrypted-shell {__version__}; contracts "
        + ", ".join(f"{s} {v}" for s, v in CONTRACT_VERSIONS.items())
    ]
    data: dict[str, Any] = {
        "shell": __version__,
        "contracts": dict(CONTRACT_VERSIONS),
        "locked": plan.lock is not None,
        "slots": {},
    }
    for row in plan_rows(plan):
        cand = plan.plugins[row["slot"]].candidate
        shared = []
        for line in cand.distribution.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                shared.append({"requirement": str(req), "installed": installed_version(req.name)})
        requires = {k: str(v) for k, v in cand.manifest.requires.items()}
        data["slots"][row["slot"]] = {
            **row,
            "requires": requires,
            "shared": shared,
            "shell_range": str(cand.manifest.shell),
            "capabilities": {k: sorted(v) for k, v in cand.manifest.capabilities.items()},
        }
        lines.append(
            f"{row['slot']}: {cand.label} contract {row['contract']} "
            f"-- {row['selected_because']}; integrity {row['content_digest']}"
        )
        lines.append(
            f"    shell range {cand.manifest.shell or 'any'}; requires "
            + (", ".join(f"{k} {v}" for k, v in requires.items()) or "no other contracts")
        )
        lines += [f"    shared {s['requirement']}: installed {s['installed']}" for s in shared]
    return data, "\n".join(lines)


def audit_report(log: LoadLog) -> tuple[dict[str, Any], str, bool]:
    state = log.read()
    data = {
        "log": str(log.path),
        "intact": state.intact,
        "problem": state.problem,
        "head": state.head,
        "records": list(state.records),
    }
    lines = [
        f"load log {log.path}: "
        + ("chain intact" if state.intact else f"CHAIN BROKEN ({state.problem})")
        + f", {len(state.records)} records, head {state.head[:16]}"
    ]
    for r in state.records:
        what = r.get("plugin") or r.get("plugins") or ""
        detail = r.get("reason") or r.get("content_digest") or ""
        lines.append(
            f"#{r.get('seq')} {r.get('event')}: {what} {r.get('version', '')} "
            f"{detail}{' [dev]' if r.get('dev') else ''}".rstrip()
        )
    return data, "\n".join(lines), state.intact
