"""The TUF side of the install path: one python-tuf ngclient ``Updater`` per registry index.

Pins the index's root (given, or trusted on first use and announced loudly), refreshes metadata,
and translates every python-tuf failure into a :class:`ProvenanceError` that names the attack it
indicates (rollback, freeze, mix-and-match, tampering), or a :class:`NetworkError`.

Every byte comes through one python-tuf ``FetcherInterface`` (the first-use root included): the
default is ngclient's urllib3 fetcher; tests pass one that serves a registry directory, so the whole
install logic runs without a server.  Used by :mod:`.installer`; python-tuf is
imported only here, only when a registry command runs.
"""

from __future__ import annotations

__all__ = [
    "Fetcher",
    "Notify",
    "TufClient",
    "connect",
    "default_fetcher",
    "locked",
    "metadata_dir",
    "normalize_index_url",
]

import contextlib
import fcntl
import hashlib
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._state.files import check_tree, ensure_dir, fsync_tree, home_error, write_atomic
from ..errors import HomeError, NetworkError, ProvenanceError, ShellError, ShellUsageError
from ..limits import LIMITS

if TYPE_CHECKING:
    from tuf.ngclient import FetcherInterface as Fetcher  # type: ignore[attr-defined]
else:
    Fetcher = Any

Notify = Callable[[str], None]


def default_fetcher() -> Fetcher:
    """ngclient's urllib3 fetcher with the shell's network timeout."""
    from tuf.ngclient import Urllib3Fetcher  # type: ignore[attr-defined]

    return Urllib3Fetcher(socket_timeout=int(LIMITS.network_timeout_s))


def normalize_index_url(url: str) -> str:
    """The registry base URL with one trailing slash (a trailing ``simple/`` is dropped)."""
    text = url.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ShellUsageError(
            f"--index {url!r} is not an http(s) URL",
            fix="give the registry's base URL, e.g. https://index.example/",
        )
    if parts.query or parts.fragment:
        raise ShellUsageError(f"--index {url!r}: no query or fragment allowed")
    if parts.username is not None or parts.password is not None:
        raise ShellUsageError(f"--index {url!r}: credentials in the URL are not supported")
    try:
        port = parts.port
    except ValueError as exc:
        raise ShellUsageError(f"--index {url!r}: bad port") from exc
    host = (parts.hostname or "").rstrip(".")  # lowercased by urlsplit; one spelling per host
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"http": 80, "https": 443}[parts.scheme]:
        netloc += f":{port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    if path.endswith("/simple/"):
        path = path[: -len("simple/")]
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))


def metadata_dir(home: Path, index_url: str) -> Path:
    """``HOME/tuf/<first 16 hex of sha256(normalized index URL)>``: this index's trusted metadata."""
    base = normalize_index_url(index_url)
    return home / "tuf" / hashlib.sha256(base.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------- TUF client
_TUF_HINTS = {
    "ExpiredMetadataError": "stale metadata: a freeze attack, or the operator did not re-sign "
    "in time (`enkrypted-registry refresh`)",
    "BadVersionNumberError": "metadata older than, or different from, what this client already "
    "trusts or what snapshot pins (rollback or mix-and-match)",
    "EqualVersionNumberError": "metadata replayed (rollback)",
    "LengthOrHashMismatchError": "a file differs from what the signed metadata pins "
    "(tampering or mix-and-match)",
    "UnsignedMetadataError": "signature threshold not met (bad or missing signature)",
    "DownloadLengthMismatchError": "the server sent more than the signed length",
}


def _tuf_failure(exc: BaseException, what: str, index: str) -> ShellError:
    """Translate an exception raised by python-tuf (or its urllib3 fetcher)."""
    import urllib3
    from tuf.api import exceptions as tuf_errors

    name = type(exc).__name__
    if isinstance(exc, tuf_errors.DownloadHTTPError):
        return ProvenanceError(
            f"TUF refused {what} from {index}: DownloadHTTPError: {exc} "
            f"(HTTP {exc.status_code}; is this an Enkrypted registry?)",
            fix="check --index (the registry base URL, which serves tuf/ and plugins/)",
        )
    if isinstance(exc, tuf_errors.SlowRetrievalError | urllib3.exceptions.HTTPError):
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        reason = getattr(cause, "reason", None) or cause
        return NetworkError(
            f"cannot reach the registry at {index} while {what}: {type(reason).__name__}: {reason}",
            fix="check the URL and that the registry is being served",
        )
    if isinstance(exc, tuf_errors.DownloadLengthMismatchError | tuf_errors.RepositoryError):
        hint = next(
            (_TUF_HINTS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _TUF_HINTS),
            "the registry's signed metadata did not verify",
        )
        return ProvenanceError(
            f"TUF refused {what} from {index}: {name}: {exc} - {hint}",
            fix="nothing was installed or changed; tell the registry operator",
        )
    if isinstance(exc, tuf_errors.DownloadError):
        return NetworkError(f"download failed from {index} while {what}: {name}: {exc}")
    if isinstance(exc, OSError):
        return ShellError(f"local I/O error while {what}: {exc}")
    return ProvenanceError(f"TUF refused {what} from {index}: {name}: {exc}")


@contextmanager
def _translated(what: str, index: str) -> Iterator[None]:
    try:
        yield
    except ShellError:
        raise
    except Exception as exc:  # python-tuf and urllib3 raise many types: fail closed, named
        raise _tuf_failure(exc, what, index) from exc


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (an empty file: nothing is written to it, so it needs no
    atomic write)."""
    ensure_dir(path.parent)
    try:
        handle = path.open("a")
    except OSError as exc:
        raise home_error(path, exc, "lock") from exc
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_first_root(index: str, fetcher: Fetcher) -> bytes:
    from tuf.api import exceptions as tuf_errors

    url = f"{index}tuf/1.root.json"
    try:
        data: bytes = fetcher.download_bytes(url, LIMITS.root_metadata_bytes)
    except tuf_errors.DownloadHTTPError as exc:
        raise ProvenanceError(
            f"{url}: HTTP {exc.status_code}; the registry serves no TUF root",
            fix="check --index, or pass the operator's root with --root FILE",
        ) from exc
    except tuf_errors.DownloadLengthMismatchError as exc:
        raise ProvenanceError(f"{url} is larger than {LIMITS.root_metadata_bytes} bytes") from exc
    except Exception as exc:  # urllib3 / socket / TLS / timeout, wrapped or not by ngclient
        cause: BaseException = exc
        while cause.__cause__ is not None:
            cause = cause.__cause__
        reason = getattr(cause, "reason", None) or cause
        raise NetworkError(
            f"cannot reach the registry at {index}: {reason}",
            fix="check the URL and that the registry is being served",
        ) from exc
    return data


class TufClient:
    """A python-tuf ngclient ``Updater`` for one index, with errors translated."""

    def __init__(
        self, index: str, home: Path, bootstrap: bytes | None, targets: Path, fetcher: Fetcher
    ) -> None:
        from tuf.ngclient import Updater  # type: ignore[attr-defined]

        self.index = index
        self.dir = metadata_dir(home, index)
        ensure_dir(self.dir)
        check_tree(self.dir)  # python-tuf open()s its files: a FIFO would block it
        with _translated("loading the trusted root", index):
            self.updater = Updater(
                metadata_dir=str(self.dir),
                metadata_base_url=f"{index}tuf/",
                target_dir=str(targets),
                target_base_url=index,
                fetcher=fetcher,
                bootstrap=bootstrap,
            )

    def refresh(self) -> None:
        with _translated("refreshing TUF metadata", self.index):
            self.updater.refresh()
        self.sync()

    def sync(self) -> None:
        """python-tuf persists metadata with a temporary file and a rename but no ``fsync``:
        make what it wrote durable, as :func:`..._state.files.write_atomic` does for our files."""
        with _translated("saving TUF metadata", self.index):
            fsync_tree(self.dir)

    def targetinfo(self, path: str) -> Any:
        with _translated(f"looking up {path}", self.index):
            info = self.updater.get_targetinfo(path)  # may persist delegated roles' metadata
        self.sync()
        return info

    def download(self, info: Any, dest: Path) -> bytes:
        with _translated(f"downloading {info.path}", self.index):
            self.updater.download_target(info, filepath=str(dest))
        return dest.read_bytes()

    def verified_bytes(self, role: str) -> bytes:
        """A role's metadata as ngclient persisted it after verifying it in this session."""
        return (self.dir / f"{urllib.parse.quote(role, safe='')}.json").read_bytes()

    def slot_wheels(self, slot: str) -> list[str]:
        """Wheel target paths listed by the slot's delegated role (to be confirmed one by one)."""
        from tuf.api.metadata import Metadata, Targets  # type: ignore[attr-defined]

        # Looking up any path under plugins/<slot>/ makes ngclient load and verify that role.
        self.targetinfo(f"plugins/{slot}/.enkrypted-probe")
        try:
            data = self.verified_bytes(slot)
        except FileNotFoundError:
            return []  # the slot is not delegated by this registry
        with _translated(f"reading {slot} metadata", self.index):
            targets = Metadata[Targets].from_bytes(data).signed.targets
        prefix = f"plugins/{slot}/"
        return sorted(
            p
            for p in targets
            if p.startswith(prefix) and p.endswith(".whl") and "/" not in p[len(prefix) :]
        )


def _root_keyids(root: bytes) -> list[str]:
    from tuf.api.metadata import Metadata, Root  # type: ignore[attr-defined]

    return sorted(Metadata[Root].from_bytes(root).signed.roles["root"].keyids)


def _read_root_file(root: Path) -> tuple[bytes, int]:
    """The bytes and version of a root metadata file given with ``--root``."""
    from tuf.api.metadata import Metadata, Root  # type: ignore[attr-defined]

    try:
        data = root.read_bytes()
    except OSError as exc:
        raise ShellUsageError(f"--root {root}: cannot read ({exc.strerror})") from exc
    if len(data) > LIMITS.root_metadata_bytes:
        raise ShellUsageError(f"--root {root}: larger than {LIMITS.root_metadata_bytes} bytes")
    try:
        version = int(Metadata[Root].from_bytes(data).signed.version)
    except Exception as exc:  # python-tuf raises DeserializationError, ValueError, TypeError
        raise ShellUsageError(f"--root {root}: not TUF root metadata ({exc})") from exc
    return data, version


def connect(
    index: str,
    home: Path,
    root: Path | None,
    targets: Path,
    say: Notify,
    *,
    pinned_only: bool,
    fetcher: Fetcher | None = None,
) -> TufClient:
    """A refreshed client for ``index``, trusting (in this order) the root given with ``--root``,
    the root pinned earlier, or - first use only - the registry's own ``1.root.json`` (TOFU).

    A root given for a fresh index, or fetched on first use, is kept only if the first refresh
    succeeds; an existing pinned state is never replaced by a different root of the same version.
    """
    fetcher = fetcher if fetcher is not None else default_fetcher()
    folder = metadata_dir(home, index)
    pinned = folder / "root.json"
    has_pin = pinned.exists()
    announce: str | None = None
    bootstrap: bytes | None = None
    if root is not None:
        bootstrap, version = _read_root_file(root)
        seen = folder / "root_history" / f"{version}.root.json"
        if has_pin and seen.exists() and seen.read_bytes() != bootstrap:
            raise ProvenanceError(
                f"--root {root} (version {version}) differs from the root version {version} "
                f"pinned for {index} in {folder}",
                fix=f"if the registry really was re-created, delete {folder} and install again",
            )
        if has_pin and seen.exists():
            bootstrap = None  # the same root: keep the pinned state (and its newer roots)
        else:
            announce = f"using the TUF root from {root} (version {version}) for {index}"
    elif not has_pin:
        if pinned_only:
            raise ProvenanceError(
                f"no TUF root is pinned for {index} ({pinned} is missing)",
                fix=f"install from it again: `enkrypted plugins install NAME --index {index}`",
            )
        bootstrap = _fetch_first_root(index, fetcher)
        with _translated("reading the first-use TUF root", index):  # not JSON, not a root
            keys = _root_keyids(bootstrap)
        for other in sorted((home / "tuf").glob("*/root_history/1.root.json")):
            if other.read_bytes() == bootstrap and other.parent.parent != folder:
                known = other.parent.parent
                url_file = known / "index-url"
                where = url_file.read_text("utf-8").strip() if url_file.is_file() else str(known)
                raise ProvenanceError(
                    f"{index} serves the TUF root already pinned for {where}; pinning it again "
                    "under a second URL would start without that pin's rollback protection",
                    fix=f"use --index {where}, or pin this URL explicitly with --root FILE",
                )
        announce = (
            "!" * 78
            + f"\n!! PINNED the TUF root of {index} on first use (trust on first use):"
            + f"\n!!   {index}tuf/1.root.json sha256 {hashlib.sha256(bootstrap).hexdigest()}"
            + f"\n!!   root key(s): {', '.join(k[:16] + '…' for k in keys)}"
            + f"\n!!   stored in {folder}"
            + "\n!! Compare it with the root your registry operator published; to pin one"
            + "\n!! explicitly, delete that directory and install again with --root FILE.\n"
            + "!" * 78
        )
    try:
        client = TufClient(index, home, bootstrap, targets, fetcher)  # ngclient checks root is self-signed
        client.refresh()
    except ShellError:
        if not has_pin:
            shutil.rmtree(folder, ignore_errors=True)  # nothing verified: keep no pin
        raise
    if not has_pin:
        with contextlib.suppress(HomeError):  # informative only (names the index in messages)
            write_atomic(folder / "index-url", (index + "\n").encode("utf-8"))
    if announce:
        say(announce)
    return client
