"""``enkrypted plugins install`` and ``enkrypted plugins refresh`` (registry client commands).

The work is done by :mod:`.installer`; these commands parse options, print, and exit.  Registered
under the ``plugins`` group by :mod:`.cli`.
"""

from __future__ import annotations

__all__ = ["install_command", "refresh_command"]

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .main import Invocation


def _loud(message: str) -> None:
    click.secho(message, fg="yellow", err=True)


@click.command("install")
@click.argument("names", nargs=-1, required=True, metavar="NAME[==VERSION]...")
@click.option(
    "--index",
    "index_url",
    required=True,
    envvar="ENKRYPTED_INDEX",
    metavar="URL",
    help="Registry base URL (it serves tuf/, plugins/ and simple/). Env: ENKRYPTED_INDEX.",
)
@click.option(
    "--root",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The registry's TUF root.json to trust (default: pinned on first use).",
)
@click.option(
    "--python",
    default=sys.executable,
    show_default="this interpreter",
    metavar="PY",
    help="Interpreter whose environment pip installs into.",
)
@click.option(
    "--deps-index",
    default=None,
    metavar="URL",
    help="Simple index for third-party dependencies (not hash-pinned). Default: install none; "
    "`enkrypted plugins verify` names what is missing.",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def install_command(
    inv: Invocation,
    names: tuple[str, ...],
    index_url: str,
    root: Path | None,
    python: str,
    deps_index: str | None,
    as_json: bool,
) -> None:
    """Install plugins from the registry: TUF-verified, provenance-checked, hash-pinned."""
    from .._install.installer import install

    done = install(
        list(names),
        index_url=index_url,
        home=inv.home,
        root=root,
        python=python,
        deps_index=deps_index,
        notify=_loud,
    )
    if as_json:
        rows = [{**asdict(p), "record_path": str(p.record_path)} for p in done]
        click.echo(json.dumps({"installed": rows}, indent=2, sort_keys=True))
        return
    for p in done:
        click.echo(
            f"installed {p.distribution} {p.version} [{p.slot}] from {p.target_path}, "
            f"signed by {p.signer_keyid[:16]}…; provenance stored in {p.record_path}"
        )
    if deps_index is None:
        click.echo(
            "third-party dependencies were not installed (no --deps-index); "
            "`enkrypted plugins verify` names any that are missing"
        )


@click.command("refresh")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def refresh_command(inv: Invocation, as_json: bool) -> None:
    """Refresh TUF metadata of the registries plugins came from; mark revoked releases."""
    from .._install.installer import refresh

    report = refresh(inv.home, notify=_loud)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2, sort_keys=True))
        return
    if not report.indexes:
        click.echo("no plugin was installed from a registry; nothing to refresh")
        return
    for item in report.newly_revoked:
        click.secho(
            f"REVOKED {item.distribution} {item.version} ({item.index}): {item.reason}",
            fg="red",
            err=True,
        )
    for item in report.already_revoked:
        click.echo(f"still revoked: {item.distribution} {item.version}: {item.reason}")
    click.echo(
        f"refreshed {len(report.indexes)} index(es), checked {report.checked} record(s): "
        f"{len(report.newly_revoked)} newly revoked, {len(report.already_revoked)} already revoked"
    )
