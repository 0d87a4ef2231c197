"""Reading and checking a plugin wheel without installing or importing it.

A wheel (PEP 427 / binary distribution format) lists every file in ``*.dist-info/RECORD`` with a
``sha256=<urlsafe-b64-nopad>`` digest; :func:`inspect_wheel` re-hashes every member against it,
refuses unlisted members, and reads the plugin's static manifest (found through the
``enkrypted.plugins`` entry point → its top-level package → ``enkrypted-plugin.toml``), and refuses
a wheel whose layout breaks the plugin wheel rule the shell enforces again at install
(:func:`enkrypted_shell.release.wheel_layout_problems`: one package and its ``.dist-info``, no
``.pth``, not the shell's package).  A malformed wheel raises :class:`WheelError`, never another
exception.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_POINT_GROUP",
    "MANIFEST_FILENAME",
    "SLOTS",
    "WheelInfo",
    "content_digest",
    "content_digest_from_wheel",
    "inspect_wheel",
    "normalize_name",
]

import base64
import binascii
import configparser
import csv
import hashlib
import io
import lzma
import struct
import tomllib
import zipfile
import zlib
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from enkrypted_shell.contracts import SLOTS
from enkrypted_shell.errors import ManifestError
from enkrypted_shell.limits import LIMITS
from enkrypted_shell.release import (
    ENTRY_POINT_GROUP,
    MANIFEST_FILENAME,
    parse_manifest,
    wheel_layout_problems,
)
from enkrypted_shell.release import content_digest as shell_content_digest

from .errors import RegistryUsageError, WheelError

# Bounds on untrusted input (a wheel handed to `publish`).
MAX_WHEEL_BYTES = 256 * 1024 * 1024

# What the zip, decompression, csv, base64 and text decoders raise on a malformed archive
# (UnicodeDecodeError and binascii.Error are ValueErrors; RecursionError and the
# NotImplementedError of an unsupported compression method are RuntimeErrors, as is an encrypted
# member; a corrupt bzip2 stream raises OSError).  inspect_wheel maps them to WheelError.
_MALFORMED = (
    ValueError,
    RuntimeError,
    EOFError,
    OSError,
    csv.Error,
    lzma.LZMAError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
)


@dataclass(frozen=True, slots=True)
class WheelInfo:
    """Everything the registry needs to know about one verified plugin wheel."""

    filename: str
    name: str  # distribution name as written in METADATA
    normalized_name: str  # PEP 503 normalized
    version: str
    requires_python: str | None
    sha256: str  # hex digest of the whole wheel file
    size: int
    core_metadata: bytes  # *.dist-info/METADATA, served as PEP 658 `<wheel>.metadata`
    manifest_path: str
    manifest_bytes: bytes
    manifest: dict[str, Any]
    slot: str
    plugin: str
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex) for every hashed RECORD entry
    content_digest: str  # "sha256:<hex>", see content_digest()


def normalize_name(name: str) -> str:
    """PEP 503 name normalization."""
    return str(canonicalize_name(name))


def _record_digest(b64: str, path: str, filename: str) -> str:
    """A RECORD ``sha256=`` value (urlsafe base64 without padding) as hex; WheelError if bad."""
    try:
        raw = base64.b64decode(
            (b64 + "=" * (-len(b64) % 4)).encode("ascii"), altchars=b"-_", validate=True
        )
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise WheelError(
            f"{filename}: RECORD entry {path} has a malformed sha256 digest {b64!r} ({exc})"
        ) from exc
    if len(raw) != hashlib.sha256().digest_size:
        raise WheelError(
            f"{filename}: RECORD entry {path} has a sha256 digest of {len(raw)} bytes, not 32"
        )
    return raw.hex()


def _text(archive: zipfile.ZipFile, member: str, filename: str) -> str:
    """A member decoded as UTF-8 (KeyError if missing, WheelError if not UTF-8)."""
    try:
        return archive.read(member).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WheelError(
            f"{filename}: {member} is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc


def _hex_to_b64(hexdigest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hexdigest)).rstrip(b"=").decode("ascii")


def content_digest(entries: list[tuple[str, str]]) -> str:
    """The shell's content digest (:func:`enkrypted_shell.release.content_digest`) over
    ``(path, sha256 hex)`` pairs, so the lock and the provenance agree with the installed copy."""
    return shell_content_digest((path, _hex_to_b64(digest)) for path, digest in entries)


def content_digest_from_wheel(path: Path) -> str:
    """Content digest of a wheel; equals the one the shell computes from the installed dist."""
    return inspect_wheel(path).content_digest


def _open_zip(path: Path) -> tuple[bytes, zipfile.ZipFile]:
    try:
        size = path.stat().st_size
        if size > MAX_WHEEL_BYTES:
            raise WheelError(f"{path.name}: {size} bytes exceeds the {MAX_WHEEL_BYTES}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryUsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{path.name}: not a zip archive ({exc})") from exc
    infos = archive.infolist()
    if len(infos) > LIMITS.provenance_files:
        raise WheelError(f"{path.name}: more than {LIMITS.provenance_files} members")
    if sum(i.file_size for i in infos) > LIMITS.wheel_uncompressed_bytes:
        raise WheelError(f"{path.name}: uncompressed size exceeds {LIMITS.wheel_uncompressed_bytes} bytes")
    return data, archive


def _dist_info_dir(archive: zipfile.ZipFile, filename: str) -> str:
    dirs = {
        n.split("/", 1)[0] for n in archive.namelist() if n.split("/", 1)[0].endswith(".dist-info")
    }
    if len(dirs) != 1:
        raise WheelError(
            f"{filename}: expected exactly one .dist-info directory, found {sorted(dirs)}"
        )
    return dirs.pop()


def _check_member_name(name: str, filename: str) -> None:
    if (
        name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in {"", ".", ".."} for p in name.split("/"))
    ):
        raise WheelError(f"{filename}: unsafe member path {name!r}")


def _read_record(archive: zipfile.ZipFile, record_name: str, filename: str) -> dict[str, str]:
    """RECORD as ``path -> sha256 hex`` (RECORD itself maps to "")."""
    try:
        record_text = _text(archive, record_name, filename)
    except KeyError as exc:
        raise WheelError(f"{filename}: {record_name} is missing") from exc
    listed: dict[str, str] = {}
    for row in csv.reader(io.StringIO(record_text)):
        if not row:
            continue
        if len(row) != 3:
            raise WheelError(f"{filename}: malformed RECORD row {row!r}")
        path, digest, _size = row
        _check_member_name(path, filename)
        if path in listed:
            raise WheelError(f"{filename}: RECORD lists {path} twice")
        if path == record_name:
            listed[path] = ""
            continue
        algo, _, b64 = digest.partition("=")
        if algo != "sha256" or not b64:
            raise WheelError(f"{filename}: RECORD entry {path} has no sha256 digest ({digest!r})")
        listed[path] = _record_digest(b64, path, filename)
    return listed


def _verified_files(
    archive: zipfile.ZipFile, dist_info: str, filename: str
) -> list[tuple[str, str]]:
    """Check every member against RECORD (PEP 427); return ``(path, sha256 hex)`` pairs."""
    record_name = f"{dist_info}/RECORD"
    listed = _read_record(archive, record_name, filename)
    members = [i.filename for i in archive.infolist() if not i.is_dir()]
    for name in members:
        _check_member_name(name, filename)
        if name in {f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"}:
            raise WheelError(f"{filename}: {name} is deprecated (PEP 815); rebuild without it")
        if name not in listed:
            raise WheelError(f"{filename}: member {name} is not listed in RECORD")
    missing = sorted(set(listed) - set(members))
    if missing:
        raise WheelError(f"{filename}: RECORD lists files missing from the wheel: {missing[:5]}")
    for path, expected in listed.items():
        if path != record_name and hashlib.sha256(archive.read(path)).hexdigest() != expected:
            raise WheelError(f"{filename}: {path} does not match its RECORD sha256")
    if any(p.split("/", 1)[0].endswith(".data") for p in listed):
        raise WheelError(
            f"{filename}: has a .data directory; installed paths would differ from the wheel's, "
            "so the content digest could not be checked at load time"
        )
    return sorted((p, d) for p, d in listed.items() if p != record_name)


def _core_metadata(
    archive: zipfile.ZipFile, dist_info: str, filename: str
) -> tuple[bytes, str, str, str | None]:
    try:
        raw = archive.read(f"{dist_info}/METADATA")
    except KeyError as exc:
        raise WheelError(f"{filename}: {dist_info}/METADATA is missing") from exc
    try:
        raw.decode("utf-8")  # core metadata is UTF-8; the index and provenance re-encode it
    except UnicodeDecodeError as exc:
        raise WheelError(
            f"{filename}: {dist_info}/METADATA is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from exc
    headers = BytesHeaderParser().parsebytes(raw)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise WheelError(f"{filename}: METADATA lacks Name or Version")
    return raw, str(name), str(version), headers.get("Requires-Python")


def _entry_point_package(archive: zipfile.ZipFile, dist_info: str, filename: str) -> str:
    try:
        text = _text(archive, f"{dist_info}/entry_points.txt", filename)
    except KeyError as exc:
        raise WheelError(
            f"{filename}: no entry_points.txt, so no {ENTRY_POINT_GROUP} entry point"
        ) from exc
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise WheelError(f"{filename}: entry_points.txt is malformed ({exc})") from exc
    if not parser.has_section(ENTRY_POINT_GROUP):
        raise WheelError(f"{filename}: no entry point in group {ENTRY_POINT_GROUP}")
    values = [v for _, v in parser.items(ENTRY_POINT_GROUP)]
    if len(values) != 1:
        raise WheelError(
            f"{filename}: expected one {ENTRY_POINT_GROUP} entry point, found {len(values)}"
        )
    return values[0].split(":", 1)[0].strip().split(".", 1)[0]


def _version(text: str, filename: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion as exc:
        raise WheelError(f"{filename}: METADATA Version {text!r} is not PEP 440") from exc


def _parse_manifest(raw: bytes, source: str) -> dict[str, Any]:
    """The shell's own manifest rules (:func:`enkrypted_shell.release.parse_manifest`): a wheel the
    shell would refuse to load is not publishable.  Returns the TOML document for the predicate."""
    try:
        parse_manifest(raw, source=source)
    except ManifestError as exc:
        raise WheelError(exc.message) from exc
    doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
    return doc


def _check_layout(files: list[tuple[str, str]], dist_info: str, filename: str) -> None:
    """The plugin wheel rule (:func:`enkrypted_shell.release.wheel_layout_problems`), which the
    shell applies again to the signed file list when it installs."""
    problems = wheel_layout_problems([path for path, _ in files] + [f"{dist_info}/RECORD"])
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise WheelError(f"{filename}: breaks the plugin wheel layout rule: {shown}")


def inspect_wheel(path: Path) -> WheelInfo:
    """Open, RECORD-verify and describe a plugin wheel; raise :class:`WheelError` on any problem
    (a missing or unreadable file is a :class:`RegistryUsageError`)."""
    try:
        return _inspect_wheel(path)
    except _MALFORMED as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise WheelError(f"{path.name}: malformed wheel ({detail})") from exc


def _inspect_wheel(path: Path) -> WheelInfo:
    filename = path.name
    try:
        wheel_name, wheel_version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise WheelError(f"{filename}: not a valid wheel filename ({exc})") from exc
    data, archive = _open_zip(path)
    with archive:
        dist_info = _dist_info_dir(archive, filename)
        files = _verified_files(archive, dist_info, filename)
        core, name, version, requires_python = _core_metadata(archive, dist_info, filename)
        if normalize_name(name) != wheel_name or _version(version, filename) != wheel_version:
            raise WheelError(f"{filename}: METADATA says {name} {version}, filename disagrees")
        package = _entry_point_package(archive, dist_info, filename)
        manifest_path = f"{package}/{MANIFEST_FILENAME}"
        try:
            manifest_bytes = archive.read(manifest_path)
        except KeyError as exc:
            raise WheelError(f"{filename}: manifest {manifest_path} is missing") from exc
        _check_layout(files, dist_info, filename)
    manifest = _parse_manifest(manifest_bytes, f"{filename}!{manifest_path}")
    return WheelInfo(
        filename=filename,
        name=name,
        normalized_name=normalize_name(name),
        version=version,
        requires_python=requires_python,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        core_metadata=core,
        manifest_path=manifest_path,
        manifest_bytes=manifest_bytes,
        manifest=manifest,
        slot=manifest["plugin"]["slot"],
        plugin=manifest["plugin"]["name"],
        files=tuple(files),
        content_digest=content_digest(files),
    )
