"""``enkrypted``: the shell's command tree (click).  The shell owns the tree; plugins add commands
through ``enkrypted_cli_commands`` after they are verified and loaded."""

from __future__ import annotations

__all__ = ["cli", "main"]

import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from .._version import __version__
from ..contracts import SLOTS
from ..errors import (
    ExitCode,
    LoadError,
    NoPluginError,
    ShellError,
    ShellUsageError,
    StoreError,
)
from .install import install_command, refresh_command
from .profile import contacts, for_plugins, id_command, passphrase_fd_option, passwd, profile

if TYPE_CHECKING:
    from .._pipeline.discover import Candidate
    from .._pipeline.plan import Plan, StartOptions
    from .._pipeline.wiring import Services

# The pipeline modules (discovery, runtime, report, ...) are imported inside the commands that use
# them: `plugins install`, `--help` and `--version` should not pay for them (benchmarks/README.md).

DEV_ENV = "ENKRYPTED_DEV"
UNSIGNED_ENV = "ENKRYPTED_ALLOW_UNSIGNED"
PROFILE_ENV = "ENKRYPTED_PROFILE"


command_profile_option = click.option(
    "--profile", "command_profile", default=None, metavar="NAME",
    help="Unlock this profile for the plugins (the same as the global --profile).",
)


def with_profile(inv: Invocation, name: str | None) -> Invocation:
    """``enkrypted chat --profile alice`` means ``enkrypted --profile alice chat``."""
    if name is None:
        return inv
    return dataclasses.replace(inv, profile=name, profile_selected=True)


@dataclass(frozen=True, slots=True)
class Invocation:
    """Global options, resolved once per process."""

    home: Path
    lock_path: Path
    choices: dict[str, tuple[str, str]]
    dev: bool
    settings: dict[str, dict[str, object]]
    allow_unsigned: bool = False
    profile: str = "default"
    profile_selected: bool = False
    """``--profile`` or ``ENKRYPTED_PROFILE`` given: plugin commands and ``run`` unlock it."""

    def options(self, *, locked: bool) -> StartOptions:
        from .._pipeline.plan import StartOptions

        return StartOptions(
            home=self.home,
            choices=self.choices,
            lock_path=self.lock_path if locked else None,
            dev=self.dev,
            allow_unsigned=self.allow_unsigned,
            settings=self.settings,
        )


def _emit(data: object, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


class ShellGroup(click.Group):
    """Root group: built-ins plus the commands plugin manifests declare (listed without import)."""

    def _declared(self) -> dict[str, list[Candidate]]:
        from .._pipeline.discover import discover

        out: dict[str, list[Candidate]] = {}
        for cand in discover().candidates:
            for name in cand.manifest.commands:
                if name not in self.commands:
                    out.setdefault(name, []).append(cand)
        return out

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._declared()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        owners = self._declared().get(cmd_name)
        return None if not owners else _plugin_command(cmd_name, owners)


def _plugin_command(name: str, owners: list[Candidate]) -> click.Command:
    labels = ", ".join(o.name for o in owners)

    @click.command(
        name=name,
        help=f"[from plugin {labels}] runs after the plugin set is verified and loaded",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )
    @click.option("--locked", is_flag=True, help="Enforce the lock.")
    @passphrase_fd_option
    @command_profile_option
    @click.pass_context
    def proxy(ctx: click.Context, locked: bool, passphrase_fd: int | None,
              command_profile: str | None) -> None:
        from .._pipeline.plan import prepare
        from .._pipeline.wiring import load

        inv: Invocation = with_profile(ctx.obj, command_profile)
        options = inv.options(locked=locked)
        plan = prepare(options)
        owner = next((o for o in owners if plan.plugins[o.slot].candidate.name == o.name), None)
        if owner is None:
            slot = owners[0].slot
            raise NoPluginError(
                f"command {name!r} comes from {labels}, which is not the selected {slot} plugin "
                f"({plan.plugins[slot].candidate.label})",
                plugin=owners[0].name,
                fix=f"select it: enkrypted --{slot} {owners[0].name} {name}",
            )
        with for_plugins(inv, passphrase_fd) as unlocked_profile:  # verified, not yet imported
            services = load(plan, options, profile=unlocked_profile)
            _owned_command(services, owner, name).main(
                args=list(ctx.args), prog_name=f"enkrypted {name}", standalone_mode=False
            )

    return proxy


def _owned_command(services: Services, owner: Candidate, name: str) -> click.Command:
    """Command ``name`` from the owner's ``enkrypted_cli_commands``, called with the owner's own
    slot context (its store namespace), not another slot's."""
    others = [p for n, p in services.manager.list_name_plugin() if n != owner.name]
    hook = services.manager.subset_hook_caller("enkrypted_cli_commands", remove_plugins=others)
    found: list[click.Command] = [
        cmd
        for group in hook(context=services.contexts[owner.slot])
        for cmd in group
        if cmd.name == name
    ]
    if len(found) != 1:
        raise LoadError(
            f"plugin {owner.name} declares command {name!r} but provides {len(found)}",
            plugin=owner.name,
        )
    return found[0]


@click.group(cls=ShellGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="enkrypted-shell")
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="ENKRYPTED_HOME",
    default=None,
    help="Profile home (keys, config, lock, load log).",
)
@click.option(
    "--lock",
    "lock_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Lock file (default: HOME/plugins.lock.toml).",
)
@click.option(
    "--profile",
    "profile_name",
    envvar=PROFILE_ENV,
    default="default",
    show_default=True,
    help="Profile in HOME/profiles (encrypted store: keys, contacts, history).",
)
@click.option("--crypto", default=None, help="Crypto plugin to select (name or distribution).")
@click.option("--p2p", default=None, help="P2P plugin to select.")
@click.option("--ui", default=None, help="UI plugin to select.")
@click.option(
    "--dev",
    is_flag=True,
    envvar=DEV_ENV,
    help="DEV ONLY: load editable (unverifiable) installs; recorded in the load log.",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    envvar=UNSIGNED_ENV,
    help="DOWNGRADE: load plugins that have no signed provenance; recorded in the load log.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path | None,
    lock_path: Path | None,
    profile_name: str,
    crypto: str | None,
    p2p: str | None,
    ui: str | None,
    dev: bool,
    allow_unsigned: bool,
) -> None:
    """Enkrypted: verified plugin shell for peer-to-peer encrypted chat."""
    from .._state.config import default_home, load_config
    from .._state.home import check_home

    home = (home or default_home()).expanduser()
    check_home(home)  # one line and exit 2 for a HOME path of the wrong kind, never a traceback
    config = load_config(home)
    choices = {slot: (name, "the config file") for slot, name in config.choices.items()}
    for slot, name in (("crypto", crypto), ("p2p", p2p), ("ui", ui)):
        if name:
            choices[slot] = (name, f"--{slot}")
    if dev:
        click.secho("WARNING: dev mode: unverified editable plugins may load", fg="red", err=True)
    if allow_unsigned:
        click.secho("WARNING: plugins without signed provenance may load", fg="red", err=True)
    ctx.obj = Invocation(
        home,
        lock_path or home / "plugins.lock.toml",
        choices,
        dev,
        {k: dict(v) for k, v in config.settings.items()},
        allow_unsigned,
        profile_name,
        ctx.get_parameter_source("profile_name") not in (None, ParameterSource.DEFAULT),
    )


@cli.group()
def plugins() -> None:
    """Inspect, verify, pin and audit plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plugins_list(inv: Invocation, as_json: bool) -> None:
    """Candidates per slot, their integrity state and whether a registry install recorded signed
    provenance for them (imports nothing, records nothing)."""
    from .._pipeline.discover import discover
    from .._pipeline.integrity import verify_distribution
    from .._pipeline.select import select

    found = discover()
    selected = set()
    for slot in SLOTS:
        try:
            choice = select(found, [slot], choices=inv.choices)[slot]
            selected.add(choice.candidate.name)
        except ShellError:
            pass
    store = inv.options(locked=False).store
    rows = []
    for cand in found.candidates:
        try:
            verify_distribution(
                cand.distribution, name=cand.dist_name, version=cand.version, record=cand.record
            )
            state = "files verified"
        except ShellError as exc:
            state = f"refused: {exc.message}"
        if cand.editable:
            state = "editable (dev only)"
        stored = store.get(cand.dist_name)
        if stored is None or stored.version != cand.version:
            state += ", no provenance"
        else:
            state += ", REVOKED" if stored.revoked else f", from {stored.index}"
        rows.append(
            {
                "slot": cand.slot,
                "plugin": cand.name,
                "distribution": cand.dist_name,
                "version": cand.version,
                "contract": str(cand.manifest.contract),
                "selected": cand.name in selected,
                "state": state,
            }
        )
    broken = [str(e) for e in found.broken]
    lines = [
        f"{r['slot']:7} {r['plugin']:16} {r['distribution']} {r['version']}  contract "
        f"{r['contract']}  {'*selected* ' if r['selected'] else ''}{r['state']}"
        for r in rows
    ]
    lines += [f"broken: {b}" for b in broken]
    _emit({"plugins": rows, "broken": broken}, as_json, "\n".join(lines) or "no plugins installed")


@plugins.command("verify")
@click.option("--locked", is_flag=True, help="Also enforce the lock.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plugins_verify(inv: Invocation, locked: bool, as_json: bool) -> None:
    """Everything up to, not including, import; exit 0 only if all pass."""
    from .._pipeline.plan import prepare, unselected
    from .report import plan_rows

    options = inv.options(locked=locked)
    plan = prepare(options)
    rows = plan_rows(plan)
    others = unselected(plan, options)
    text = "\n".join(
        [f"ok  {r['slot']:7} {r['plugin']} {r['distribution']} {r['version']} {r['content_digest']}"
         for r in rows]
        + [f"--  {r['slot']:7} {r['plugin']} {r['distribution']} {r['version']}: {r['status']}: {r['why']}"
           for r in others]
    )
    _emit({"ok": True, "plugins": rows, "not_selected": others}, as_json, text)


@plugins.command("lock")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None)
@click.pass_obj
def plugins_lock(inv: Invocation, output: Path | None) -> None:
    """Pin the verified selection (per slot: distribution, version, content digest)."""
    from .._pipeline.lock import Lock, LockEntry, dump_lock
    from .._pipeline.plan import locked_libraries, prepare

    plan = prepare(inv.options(locked=False))
    entries = {}
    for slot, p in plan.plugins.items():
        if p.digest is None:
            raise ShellUsageError(
                f"{slot}: {p.candidate.label} is unverified (dev); cannot lock it"
            )
        entries[slot] = LockEntry(
            slot,
            p.candidate.name,
            p.candidate.dist_name,
            p.candidate.version,
            p.digest,
            wheel_sha256=p.provenance.wheel_sha256 if p.provenance else None,
            index=p.stored.index if p.stored else None,
            signer=p.provenance.signer_keyid if p.provenance else None,
            dependencies=p.dependency_pins,
        )
    from .._state.files import write_atomic

    libraries = locked_libraries(plan)
    target = output or inv.lock_path
    lock = Lock(entries, f"enkrypted-shell {__version__}", libraries)
    write_atomic(target, dump_lock(lock).encode("utf-8"))
    files = sum(len(lib.files) for lib in libraries.values())
    click.echo(f"wrote {target} ({len(entries)} plugins, {len(libraries)} libraries, {files} files)")


@plugins.command("graph")
@click.option("--locked", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plugins_graph(inv: Invocation, locked: bool, as_json: bool) -> None:
    """The resolved plan and why each choice was made, before anything runs."""
    from .._pipeline.plan import prepare
    from .report import graph_report

    data, text = graph_report(prepare(inv.options(locked=locked)))
    _emit(data, as_json, text)


@plugins.command("audit")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "cyclonedx"]),
    default="text",
    help="cyclonedx: a CycloneDX 1.5 JSON SBOM of the running configuration.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--locked", is_flag=True)
@click.pass_obj
def plugins_audit(inv: Invocation, fmt: str, as_json: bool, locked: bool) -> None:
    """The running configuration (plugin, version, wheel digest, signer, TUF role, installed and
    loaded when) and the load log's chain state.  Exit 18 if the chain is broken, or the
    configuration's refusal code if it no longer verifies."""
    from .._pipeline.plan import prepare
    from .report import audit_report, cyclonedx

    options = inv.options(locked=locked)
    try:
        plan: Plan | None = prepare(options, record=False)
        refusal: ShellError | None = None
    except ShellError as exc:
        plan, refusal = None, exc
    report = audit_report(options.log, plan, options.store, refusal)
    if fmt == "cyclonedx":
        click.echo(json.dumps(cyclonedx(report), indent=2, sort_keys=True))
    else:
        _emit(report.data, as_json or fmt == "json", report.text)
    if not report.intact:
        sys.exit(ExitCode.LOG_CORRUPT)
    if refusal is not None:
        sys.exit(int(refusal.exit_code))


plugins.add_command(install_command)
plugins.add_command(refresh_command)
for _store_command in (profile, passwd, contacts, id_command):
    cli.add_command(_store_command)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--locked", is_flag=True, help="Refuse anything that differs from the lock.")
@passphrase_fd_option
@command_profile_option
@click.pass_context
def run(ctx: click.Context, locked: bool, passphrase_fd: int | None,
        command_profile: str | None) -> None:
    """Verify, load and hand over to the ui plugin (extra arguments go to it).  With --profile
    (or ENKRYPTED_PROFILE) the profile is unlocked first and handed to the plugins."""
    inv: Invocation = with_profile(ctx.obj, command_profile)
    options = inv.options(locked=locked)
    from .._pipeline.plan import prepare
    from .._pipeline.wiring import load

    plan = prepare(options)
    with for_plugins(inv, passphrase_fd) as unlocked_profile:  # verified, not yet imported
        services: Services = load(plan, options, profile=unlocked_profile)
        try:
            code = services.ui.run(list(ctx.args))
        except StoreError:
            raise  # busy or damaged store: its own one line and exit code
        except Exception as exc:
            raise ShellError(
                f"the ui plugin failed: {type(exc).__name__}: {exc}",
                plugin=plan.plugins["ui"].candidate.name,
            ) from exc
    sys.exit(code)  # the store is closed first


def main(argv: Sequence[str] | None = None) -> Any:
    """Console-script entry: ShellError -> one clear message and its documented exit code."""
    try:
        return cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="enkrypted",
            standalone_mode=False,
        )
    except ShellError as exc:
        where = f" [{exc.plugin}]" if exc.plugin else ""
        click.secho(f"enkrypted: refused{where} ({exc.rule}): {exc}", fg="red", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(ExitCode.FAILURE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # a local I/O failure no check anticipated: one line, not a traceback
        click.secho(f"enkrypted: I/O error: {exc}", fg="red", err=True)
        sys.exit(ExitCode.FAILURE)
