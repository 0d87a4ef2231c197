"""``enkrypted-registry`` command line: init, publish, serve, rotate, refresh, revoke/yank, status."""

from __future__ import annotations

__all__ = ["main"]

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import RegistryError, RegistryUsageError
from .keys import load_key
from .publishing import publish, revoke
from .repository import ROLES, Repository


def _expiry(values: list[str]) -> dict[str, int]:
    days: dict[str, int] = {}
    for value in values:
        role, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise RegistryUsageError(f"--expires-days takes ROLE=DAYS, got {value!r}")
        days[role] = int(number)
    return days


def _cmd_init(args: argparse.Namespace) -> None:
    repo = Repository.init(args.dir, keys_dir=args.keys_dir, expiry_days=_expiry(args.expires_days))
    print(f"initialised registry in {repo.root}")
    print(f"private keys (operator secrets, mode 0600): {repo.keys_dir}")
    print(f"pin this root on clients: {repo.tuf_dir / '1.root.json'}")


def _sigstore_bundles(values: list[str], wheels: list[Path]) -> dict[str, bytes]:
    """``--sigstore-bundle [WHEEL=]FILE`` values → {wheel filename: bundle bytes}.

    ``WHEEL=FILE`` when the part before the first ``=`` names one of the wheels (path or filename);
    otherwise the whole value is the bundle file, which needs exactly one wheel."""
    names = {wheel.name for wheel in wheels}
    bundles: dict[str, bytes] = {}
    for value in values:
        wheel, sep, file = value.partition("=")
        if sep and Path(wheel).name in names:
            name = Path(wheel).name
        elif len(wheels) == 1:
            name, file = wheels[0].name, value
        else:
            raise RegistryUsageError(
                f"--sigstore-bundle {value!r} names none of the wheels; with several wheels give "
                "--sigstore-bundle WHEEL=FILE for each"
            )
        if name in bundles:
            raise RegistryUsageError(f"more than one --sigstore-bundle for {name}")
        try:
            bundles[name] = Path(file).read_bytes()
        except OSError as exc:
            raise RegistryUsageError(f"--sigstore-bundle {file}: {exc.strerror or exc}") from exc
    return bundles


def _cmd_publish(args: argparse.Namespace) -> None:
    repo = Repository(args.dir)
    bundles = _sigstore_bundles(args.sigstore_bundle, args.wheels)
    with repo.locked():
        results = publish(repo, args.wheels, load_key(args.key), sigstore_bundles=bundles)
    for result in results:
        state = "already published" if result.skipped else "published"
        signed = (
            f" + Sigstore bundle of {result.sigstore_identity}" if result.sigstore_identity else ""
        )
        print(f"{state}: {result.filename} -> {result.target_path} (+ .provenance{signed})")


def _cmd_serve(args: argparse.Namespace) -> None:
    from .server import serve

    repo = Repository(args.dir)  # refuses a keys dir inside public/
    serve(repo.public, args.host, args.port, keys_dir=repo.keys_dir)


def _cmd_rotate(args: argparse.Namespace) -> None:
    repo = Repository(args.dir)
    with repo.locked():
        key = repo.rotate(args.role)
    print(f"rotated {args.role}: new key {key.keyid} in {repo.key_path(args.role)}")
    print(f"old key moved to {repo.keys_dir / 'retired'}; destroy it once clients have refreshed")


def _cmd_refresh(args: argparse.Namespace) -> None:
    repo = Repository(args.dir)
    with repo.locked():
        repo.refresh(args.role)
    print(f"re-signed {args.role} (and timestamp) with a fresh expiry")


def _cmd_revoke(args: argparse.Namespace) -> None:
    repo = Repository(args.dir)
    key = load_key(args.key) if args.key else None
    with repo.locked():
        names = revoke(
            repo, args.requirement, reason=args.reason, key=key, delete_files=args.delete_files
        )
    for name in names:
        print(f"revoked: {name} ({args.reason})")


def _cmd_status(args: argparse.Namespace) -> None:
    status = Repository(args.dir).status()
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return
    print(f"registry {status['root']} (keys in {status['keys_dir']})")
    for name, role in status["roles"].items():
        flag = "  EXPIRED" if role["expired"] else ""
        extra = f" targets={role['targets']} paths={role['paths']}" if "paths" in role else ""
        keys = ",".join(k[:16] for k in role["keyids"])
        print(
            f"  {name:<9} v{role['version']:<4} expires {role['expires']}{flag} "
            f"threshold={role['threshold']} keys={keys}{extra}"
        )
    for name, project in status["projects"].items():
        for filename, entry in project["files"].items():
            state = f"YANKED ({entry['yanked']})" if entry["yanked"] else "live"
            print(f"  [{project['slot']}] {name} {entry['version']}: {filename} {state}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enkrypted-registry", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create a registry with fresh keys and TUF metadata")
    p.add_argument("dir", type=Path)
    p.add_argument("--keys-dir", type=Path, help="where private keys go (default DIR/keys)")
    p.add_argument(
        "--expires-days",
        action="append",
        default=[],
        metavar="ROLE=DAYS",
        help=f"expiry per role ({', '.join(ROLES)}); repeatable",
    )
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("publish", help="publish plugin wheels with a slot's delegated key")
    p.add_argument("dir", type=Path)
    p.add_argument("wheels", type=Path, nargs="+")
    p.add_argument("--key", type=Path, required=True, help="the slot's private key (PEM)")
    p.add_argument(
        "--sigstore-bundle",
        action="append",
        default=[],
        metavar="[WHEEL=]FILE",
        help="a Sigstore bundle signing the wheel (`sigstore sign`), carried in its provenance; "
        "FILE alone with one wheel, WHEEL=FILE per wheel with several; repeatable",
    )
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("serve", help="serve DIR/public with PEP 691 negotiation")
    p.add_argument("dir", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("rotate", help="replace a role's key")
    p.add_argument("dir", type=Path)
    p.add_argument("--role", required=True, choices=ROLES)
    p.set_defaults(func=_cmd_rotate)

    p = sub.add_parser("refresh", help="re-sign timestamp (or snapshot) before it expires")
    p.add_argument("dir", type=Path)
    p.add_argument("--role", default="timestamp", choices=("timestamp", "snapshot"))
    p.set_defaults(func=_cmd_refresh)

    for name in ("revoke", "yank"):
        p = sub.add_parser(name, help="yank NAME==VERSION and remove it from TUF targets")
        p.add_argument("dir", type=Path)
        p.add_argument("requirement", metavar="NAME==VERSION")
        p.add_argument("--reason", default="revoked by the registry operator")
        p.add_argument("--key", type=Path, help="the slot's key (default: DIR's keys dir)")
        p.add_argument(
            "--delete-files",
            action="store_true",
            help="also delete the files and drop them from the index",
        )
        p.set_defaults(func=_cmd_revoke)

    p = sub.add_parser("status", help="roles, versions, expiry, keys")
    p.add_argument("dir", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except RegistryError as exc:
        print(f"enkrypted-registry: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
