"""Human and JSON views of a plan (``plugins verify|graph``) and of the load log (``audit``)."""

from __future__ import annotations

__all__ = ["AuditReport", "audit_report", "cyclonedx", "graph_report", "plan_rows"]

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement

from .._pipeline.plan import Plan
from .._pipeline.skew import installed_version
from .._state.loadlog import LoadLog
from .._state.provenance_store import ProvenanceStore
from .._version import __version__
from ..contracts import CONTRACT_VERSIONS
from ..errors import ShellError


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
        planned = plan.plugins[row["slot"]]
        cand = planned.candidate
        shared: list[dict[str, Any]] = []
        for line in cand.requires:
            try:
                req = Requirement(line)
                applies = req.marker is None or req.marker.evaluate({"extra": ""})
            except (
                InvalidRequirement,
                InvalidMarker,
                UndefinedComparison,
                UndefinedEnvironmentName,
            ):
                shared.append({"requirement": line, "installed": None, "unparsable": True})
                continue
            if applies:
                shared.append({"requirement": str(req), "installed": installed_version(req.name)})
        requires = {k: str(v) for k, v in cand.manifest.requires.items()}
        data["slots"][row["slot"]] = {
            **row,
            "requires": requires,
            "shared": shared,
            "shell_range": str(cand.manifest.shell),
            "capabilities": {k: sorted(v) for k, v in cand.manifest.capabilities.items()},
            "signer": planned.provenance.signer_keyid if planned.provenance else None,
            "sigstore_signers": list(planned.sigstore_signers),
            "index": planned.stored.index if planned.stored else None,
            "dependencies": list(planned.dependency_pins),
            "assets": planned.integrity.asset_digests() if planned.integrity else {},
        }
        lines.append(
            f"{row['slot']}: {cand.label} contract {row['contract']} "
            f"-- {row['selected_because']}; integrity {row['content_digest']}"
        )
        if planned.provenance and planned.stored:
            lines.append(
                f"    signed by {planned.provenance.signer_keyid[:16]}… ({row['slot']} key"
                + "".join(f", sigstore {s}" for s in planned.sigstore_signers)
                + f") from {planned.stored.index}"
            )
        elif planned.integrity:
            lines.append("    UNSIGNED: admitted by --allow-unsigned")
        lines += [f"    imports plugin code of {d}" for d in planned.dependency_pins]
        lines += [
            f"    serves asset {name} {digest}"
            for name, digest in data["slots"][row["slot"]]["assets"].items()
        ]
        lines.append(
            f"    shell range {cand.manifest.shell or 'any'}; requires "
            + (", ".join(f"{k} {v}" for k, v in requires.items()) or "no other contracts")
        )
        lines += [
            f"    shared {s['requirement']!r}: UNPARSABLE Requires-Dist"
            if s.get("unparsable")
            else f"    shared {s['requirement']}: installed {s['installed']}"
            for s in shared
        ]
    return data, "\n".join(lines)


@dataclass(frozen=True, slots=True)
class AuditReport:
    data: dict[str, Any]
    text: str
    intact: bool


def _last_loaded(records: tuple[dict[str, object], ...], plugin: str) -> object:
    for r in reversed(records):
        loaded = r.get("plugins")
        when = r.get("time")
        if r.get("event") != "loaded" or not isinstance(loaded, dict):
            continue
        if plugin in loaded.values() and isinstance(when, int | float):
            return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def audit_report(
    log: LoadLog, plan: Plan | None, store: ProvenanceStore, refusal: ShellError | None
) -> AuditReport:
    state = log.read()
    plugins: list[dict[str, Any]] = []
    for slot, p in plan.plugins.items() if plan else ():
        stored, proof = p.stored, p.provenance
        plugins.append(
            {
                "slot": slot,
                "plugin": p.candidate.name,
                "distribution": p.candidate.dist_name,
                "version": p.candidate.version,
                "content_digest": p.digest,
                "wheel_sha256": proof.wheel_sha256 if proof else None,
                "signer": proof.signer_keyid if proof else None,
                "sigstore_signers": list(p.sigstore_signers),
                "tuf_role": stored.tuf_role if stored else None,
                "index": stored.index if stored else None,
                "installed_at": stored.installed_at if stored else None,
                "last_loaded": _last_loaded(state.records, p.candidate.name),
                "assets": p.integrity.asset_digests() if p.integrity else {},
            }
        )
    data = {
        "configuration": "verified" if plan else f"refused: {refusal}",
        "plugins": plugins,
        "installed_records": len(store.all()),
        "log": {
            "path": str(log.path),
            "intact": state.intact,
            "problem": state.problem,
            "head": state.head,
            "torn_bytes": len(state.torn),
            "records": list(state.records),
        },
    }
    lines = [f"configuration: {data['configuration']}"]
    for row in plugins:
        lines.append(
            f"  {row['slot']:7} {row['plugin']} {row['distribution']} {row['version']}  "
            f"wheel {row['wheel_sha256'] or 'unsigned'}  signer {row['signer'] or '-'}  "
            f"role {row['tuf_role'] or '-'}  installed {row['installed_at'] or '-'}  "
            f"last loaded {row['last_loaded'] or 'never'}"
        )
        lines += [f"    serves asset {n} {d}" for n, d in row["assets"].items()]
    lines.append(
        f"load log {log.path}: "
        + ("chain intact" if state.intact else f"CHAIN BROKEN ({state.problem})")
        + f", {len(state.records)} records, head {state.head[:16]}"
        + (
            f"; an unterminated final record ({len(state.torn)} bytes, a write cut off by a "
            "crash) will be preserved aside and noted at the next start"
            if state.torn
            else ""
        )
    )
    for r in state.records:
        what = r.get("plugin") or r.get("plugins") or ""
        detail = r.get("reason") or r.get("content_digest") or ""
        lines.append(
            f"#{r.get('seq')} {r.get('event')}: {what} {r.get('version', '')} "
            f"{detail}{' [dev]' if r.get('dev') else ''}".rstrip()
        )
    return AuditReport(data, "\n".join(lines), state.intact)


def cyclonedx(report: AuditReport) -> dict[str, Any]:
    """A CycloneDX 1.5 JSON document of the verified configuration (small enough to write by
    hand; see docs/adr/0001)."""
    log = report.data["log"]
    components = []
    for row in report.data["plugins"]:
        props = {
            k: row[k]
            for k in (
                "slot",
                "plugin",
                "content_digest",
                "signer",
                "tuf_role",
                "index",
                "installed_at",
                "last_loaded",
            )
            if row[k] is not None
        }
        props |= {
            f"sigstore-signer-{i}": signer for i, signer in enumerate(row["sigstore_signers"], 1)
        }
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"{row['distribution']}@{row['version']}",
            "name": row["distribution"],
            "version": row["version"],
            "purl": f"pkg:pypi/{row['distribution']}@{row['version']}",
            "properties": [{"name": f"enkrypted:{k}", "value": str(v)} for k, v in props.items()],
        }
        if row["wheel_sha256"]:
            component["hashes"] = [{"alg": "SHA-256", "content": row["wheel_sha256"]}]
        components.append(component)
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {
                "components": [
                    {"type": "application", "name": "enkrypted-shell", "version": __version__}
                ]
            },
            "properties": [
                {"name": "enkrypted:configuration", "value": report.data["configuration"]},
                {"name": "enkrypted:load-log-intact", "value": str(log["intact"]).lower()},
                {"name": "enkrypted:load-log-head", "value": log["head"]},
            ],
        },
        "components": components,
    }
