"""Built-in commands over the profile store: ``profile``, ``passwd``, ``contacts``, ``id``.

The passphrase comes from ``--passphrase-fd N`` (one line read from that descriptor), else the
``ENKRYPTED_PASSPHRASE`` environment variable, else a hidden prompt (docs/operations.md,
"Profiles").  Errors are one line with the exit codes of docs/errors.md (20 wrong passphrase,
21 damaged or foreign store, 22 store busy, 2 usage).
"""

from __future__ import annotations

__all__ = [
    "contacts",
    "for_plugins",
    "id_command",
    "invite_link",
    "passphrase_fd_option",
    "passwd",
    "profile",
]

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Final

import click

from ..errors import ShellUsageError

if TYPE_CHECKING:
    from .._state.store import PluginProfile, Profile
    from .main import Invocation

PASSPHRASE_ENV: Final = "ENKRYPTED_PASSPHRASE"  # noqa: S105 (a variable name)
NEW_PASSPHRASE_ENV: Final = "ENKRYPTED_NEW_PASSPHRASE"  # noqa: S105


def _passphrase_bytes() -> int:
    from .._state.store import STORE_LIMITS

    return STORE_LIMITS.passphrase_bytes


def _from_fd(fd: int) -> bytes:
    """One line from descriptor ``fd`` (a pipe or file the caller opened), bounded."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= _passphrase_bytes():
            chunk = os.read(fd, _passphrase_bytes() + 2 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if b"\n" in chunk:
                break
    except OSError as exc:
        raise ShellUsageError(f"cannot read a passphrase from descriptor {fd}: {exc.strerror}") from exc
    data = b"".join(chunks).split(b"\n", 1)[0].removesuffix(b"\r")
    if size > _passphrase_bytes() and b"\n" not in b"".join(chunks):
        raise ShellUsageError(f"passphrase from descriptor {fd} is longer than {_passphrase_bytes()} bytes")
    return data


def read_passphrase(fd: int | None, env: str, prompt: str, *, confirm: bool = False) -> bytes:
    """The passphrase from ``fd``, else ``env``, else a hidden prompt; never empty."""
    if fd is not None:
        value = _from_fd(fd)
    elif os.environ.get(env):
        value = os.environ[env].encode("utf-8")
    elif not sys.stdin.isatty():  # never echo a passphrase typed into a pipe
        raise ShellUsageError(
            "no passphrase given and no terminal to ask on",
            fix=f"pass --passphrase-fd N or set {env} (docs/operations.md, 'Profiles')",
        )
    else:
        value = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm,
                             err=True).encode("utf-8")
    if not value:
        raise ShellUsageError("empty passphrase")
    if len(value) > _passphrase_bytes():
        raise ShellUsageError(f"passphrase longer than {_passphrase_bytes()} bytes")
    return value


passphrase_fd_option = click.option(
    "--passphrase-fd", type=int, default=None, metavar="N",
    help=f"Read the passphrase from file descriptor N (else ${PASSPHRASE_ENV}, else a prompt).",
)


@contextlib.contextmanager
def unlocked(inv: Invocation, passphrase_fd: int | None) -> Iterator[Profile]:
    from .._state.store import Profile, Vault, store_path

    path = store_path(inv.home, inv.profile)
    if not path.exists():
        raise ShellUsageError(
            f"no profile {inv.profile!r} in {inv.home}",
            fix=f"create it: enkrypted --profile {inv.profile} profile create",
        )
    secret = read_passphrase(passphrase_fd, PASSPHRASE_ENV, f"Passphrase for {inv.profile}")
    with Vault.open(path, secret) as vault:
        yield Profile(vault)


@contextlib.contextmanager
def for_plugins(inv: Invocation, passphrase_fd: int | None) -> Iterator[PluginProfile | None]:
    """The selected profile (``--profile`` / ``ENKRYPTED_PROFILE``), unlocked for the plugins of
    a plugin command or ``run`` and closed when it ends; ``None`` when none was selected."""
    if not inv.profile_selected:
        if passphrase_fd is not None:
            raise ShellUsageError(
                "--passphrase-fd given but no profile selected",
                fix="select one: enkrypted --profile NAME ... (or set ENKRYPTED_PROFILE)",
            )
        yield None
        return
    from .._state.store import PluginProfile

    with unlocked(inv, passphrase_fd) as prof:
        yield PluginProfile(prof)


def _emit(data: object, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


# -- profile ---------------------------------------------------------------------------------


@click.group()
def profile() -> None:
    """Create, list and delete encrypted profiles (HOME/profiles/NAME)."""


@profile.command("create")
@click.argument("name", required=False)
@passphrase_fd_option
@click.pass_obj
def profile_create(inv: Invocation, name: str | None, passphrase_fd: int | None) -> None:
    """Create profile NAME (default: --profile) with a new passphrase."""
    from .._state.files import ensure_dir
    from .._state.store import Vault, store_path

    name = name or inv.profile
    path = store_path(inv.home, name)
    if path.exists():
        raise ShellUsageError(f"profile {name!r} already exists ({path})")
    secret = read_passphrase(passphrase_fd, PASSPHRASE_ENV, f"New passphrase for {name}",
                             confirm=True)
    ensure_dir(path.parent)
    Vault.create(path, secret).close()
    click.echo(f"created profile {name} ({path})")


@profile.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def profile_list(inv: Invocation, as_json: bool) -> None:
    """Profiles in HOME (nothing is unlocked)."""
    from .._state.store import profile_names, store_path

    rows = [
        {"name": n, "path": str(store_path(inv.home, n)), "selected": n == inv.profile}
        for n in profile_names(inv.home)
    ]
    text = "\n".join(f"{'*' if r['selected'] else ' '} {r['name']}  {r['path']}" for r in rows)
    _emit({"profiles": rows}, as_json, text or f"no profiles in {inv.home}")


@profile.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def profile_delete(inv: Invocation, name: str, yes: bool) -> None:
    """Delete profile NAME and everything in it (keys, contacts, history)."""
    from .._state.store import delete_profile

    if not yes:
        click.confirm(f"Delete profile {name} and all its keys, contacts and history?",
                      abort=True, err=True)
    delete_profile(inv.home, name)
    click.echo(f"deleted profile {name}")


# -- passwd ----------------------------------------------------------------------------------


@click.command()
@passphrase_fd_option
@click.option("--new-passphrase-fd", type=int, default=None, metavar="N",
              help=f"Read the new passphrase from descriptor N (else ${NEW_PASSPHRASE_ENV}).")
@click.pass_obj
def passwd(inv: Invocation, passphrase_fd: int | None, new_passphrase_fd: int | None) -> None:
    """Change the profile's passphrase (one atomic re-wrap of its data key)."""
    with unlocked(inv, passphrase_fd) as prof:
        new = read_passphrase(new_passphrase_fd, NEW_PASSPHRASE_ENV,
                              f"New passphrase for {inv.profile}", confirm=True)
        prof.vault.change_passphrase(new)
    click.echo(f"passphrase of profile {inv.profile} changed")


# -- contacts --------------------------------------------------------------------------------


@click.group()
def contacts() -> None:
    """The profile's contacts and their verification state."""


@contacts.command("add")
@click.argument("peer_id")
@click.option("--name", required=True, help="Display name.")
@click.option("--fingerprint", default="", help="Identity fingerprint, if known (from an invite).")
@passphrase_fd_option
@click.pass_obj
def contacts_add(inv: Invocation, peer_id: str, name: str, fingerprint: str,
                 passphrase_fd: int | None) -> None:
    """Add PEER_ID as a contact."""
    from .._state.store import Contact

    _check_text("peer id", peer_id)
    _check_text("name", name)
    with unlocked(inv, passphrase_fd) as prof:
        if prof.vault.get("contacts", "profile", peer_id.encode()) is not None:
            raise ShellUsageError(f"{peer_id} is already a contact")
        prof.save_contact(Contact(name, peer_id, fingerprint))
    click.echo(f"added {name} ({peer_id})")


@contacts.command("list")
@click.option("--json", "as_json", is_flag=True)
@passphrase_fd_option
@click.pass_obj
def contacts_list(inv: Invocation, as_json: bool, passphrase_fd: int | None) -> None:
    """Contacts, with fingerprint and verification state."""
    with unlocked(inv, passphrase_fd) as prof:
        rows = [asdict(c) for c in prof.contacts()]
    text = "\n".join(
        f"{r['name']:20} {r['peer_id']:36} {r['verification']:10} {r['fingerprint'] or '-'}"
        for r in rows
    )
    _emit({"contacts": rows}, as_json, text or "no contacts")


@contacts.command("rename")
@click.argument("contact")
@click.argument("new_name")
@passphrase_fd_option
@click.pass_obj
def contacts_rename(inv: Invocation, contact: str, new_name: str, passphrase_fd: int | None) -> None:
    """Rename CONTACT (peer id or name)."""
    _check_text("name", new_name)
    with unlocked(inv, passphrase_fd) as prof:
        found = prof.contact(contact)
        prof.save_contact(replace(found, name=new_name))
    click.echo(f"renamed {found.name} to {new_name}")


@contacts.command("remove")
@click.argument("contact")
@passphrase_fd_option
@click.pass_obj
def contacts_remove(inv: Invocation, contact: str, passphrase_fd: int | None) -> None:
    """Remove CONTACT with its session state and history (one transaction)."""
    with unlocked(inv, passphrase_fd) as prof:
        found = prof.contact(contact)
        prof.remove_contact(found)
    click.echo(f"removed {found.name} ({found.peer_id})")


@contacts.command("verify")
@click.argument("contact")
@click.option("--fingerprint", default=None,
              help="The fingerprint compared out of band; must equal the stored one.")
@passphrase_fd_option
@click.pass_obj
def contacts_verify(inv: Invocation, contact: str, fingerprint: str | None,
                    passphrase_fd: int | None) -> None:
    """Mark CONTACT verified (after comparing its fingerprint or safety number)."""
    with unlocked(inv, passphrase_fd) as prof:
        found = prof.contact(contact)
        if fingerprint is not None and found.fingerprint and fingerprint != found.fingerprint:
            raise ShellUsageError(
                f"fingerprint mismatch for {found.name}: stored {found.fingerprint}",
                fix="do not verify: compare again with the contact, out of band",
            )
        stored = found.fingerprint or (fingerprint or "")
        if not stored:
            raise ShellUsageError(f"no fingerprint known for {found.name}",
                                  fix="pass --fingerprint FP as read from the contact")
        prof.save_contact(replace(found, fingerprint=stored, verification="verified"))
    click.echo(f"verified {found.name} ({stored})")


def _check_text(what: str, value: str) -> None:
    if not value or len(value) > 256 or not value.isprintable():
        raise ShellUsageError(f"bad {what} {value!r} (1-256 printable characters)")


# -- id ------------------------------------------------------------------------------------

INVITE_SCHEME: Final = "enkrypted://peer/"
_FINGERPRINT = re.compile(r"[0-9a-f]{16,128}")
_PEER_ID = re.compile(r"[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*")  # PeerJS util.validateId


def invite_link(fingerprint: str, peer_id: str | None = None) -> str:
    """``enkrypted://peer/<fingerprint>[?id=<peer-id>]`` (docs/hooks.md, "Invite links")."""
    from urllib.parse import quote

    if not _FINGERPRINT.fullmatch(fingerprint):
        raise ShellUsageError(f"the crypto plugin's fingerprint {fingerprint!r} is not lowercase hex")
    link = INVITE_SCHEME + fingerprint
    if peer_id is not None:
        if len(peer_id) > 64 or not _PEER_ID.fullmatch(peer_id):
            raise ShellUsageError(f"bad peer id {peer_id!r} (PeerJS ids: letters, digits, "
                                  "single '-', '_' or ' ' between them; at most 64)")
        link += "?id=" + quote(peer_id, safe="")
    return link


def _qr_text(link: str) -> str:
    """The link as a terminal QR code (segno, error correction M, half-block characters)."""
    import io

    import segno

    out = io.StringIO()
    segno.make(link, error="m", micro=False).terminal(out=out, compact=True)
    return out.getvalue().rstrip("\n")


@click.command("id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--qr", is_flag=True, help="Also show the invite link as a terminal QR code.")
@click.option("--peer-id", default=None, metavar="ID",
              help="Put this peer id in the invite link (?id=ID).")
@click.option("--locked", is_flag=True, help="Refuse a plugin set that differs from the lock.")
@passphrase_fd_option
@click.pass_obj
def id_command(inv: Invocation, as_json: bool, qr: bool, peer_id: str | None, locked: bool,
               passphrase_fd: int | None) -> None:
    """The profile's identity fingerprint and invite link (the identity is created with the crypto
    plugin on first use)."""
    from .._pipeline.plan import prepare
    from .._pipeline.wiring import load

    if peer_id is not None:
        invite_link("0" * 16, peer_id)  # a bad peer id is refused before anything is unlocked
    options = inv.options(locked=locked)
    crypto = load(prepare(options), options).crypto  # verified and loaded first
    with unlocked(inv, passphrase_fd) as prof:
        identity = prof.identity_for(crypto.backend, crypto.new_identity)
    fingerprint = crypto.fingerprint(identity)
    link = invite_link(fingerprint, peer_id)
    text = f"{inv.profile}: {fingerprint} ({crypto.backend})\n{link}"
    if qr and not as_json:
        text = f"{_qr_text(link)}\n{text}"
    _emit({"profile": inv.profile, "backend": crypto.backend, "fingerprint": fingerprint,
           "invite": link}, as_json, text)
