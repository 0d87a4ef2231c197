"""The static plugin manifest (``<package>/enkrypted-plugin.toml``), parsed without importing code.

Example::

    [plugin]
    name = "crypto-pyca"      # what --crypto NAME selects
    slot = "crypto"           # ui | p2p | crypto
    contract = "1.0"          # slot contract version implemented (MAJOR.MINOR)
    shell = ">=0.1,<1"        # enkrypted-shell versions it runs under (PEP 440 specifiers)
    commands = []             # CLI commands it contributes through enkrypted_cli_commands
    assets = "static"         # optional: a folder of the package whose verified bytes the
                              # plugin serves (AppContext.assets; a ui plugin's web assets)

    [requires]                # contract ranges it needs from other slots
    p2p = ">=1.0,<2"

    [capabilities]            # what it really provides, by kind
    primitives = ["aes-256-gcm", "x25519"]
"""

from __future__ import annotations

__all__ = [
    "MANIFEST_FILENAME",
    "ContractVersion",
    "PluginManifest",
    "check_ranges",
    "parse_manifest",
    "specifier",
]

import re
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from ..contracts import SLOTS
from ..errors import ManifestError
from ..limits import LIMITS

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

MANIFEST_FILENAME = "enkrypted-plugin.toml"
_CONTRACT_RE = re.compile(r"^(0|[1-9]\d{0,3})\.(0|[1-9]\d{0,3})$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ASSETS_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ContractVersion(NamedTuple):
    """A slot contract version ``MAJOR.MINOR``."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> ContractVersion:
        match = _CONTRACT_RE.match(text)
        if not match:
            raise ValueError(f"contract version {text!r} is not MAJOR.MINOR")
        return cls(int(match.group(1)), int(match.group(2)))

    def served_by(self, spoken: ContractVersion) -> bool:
        """A shell that speaks ``spoken`` serves a plugin built against this version: the same
        MAJOR and a MINOR no newer (DESIGN.md §4). MINORs only add, and the shell keeps the
        Protocol of every MINOR it published (``contracts.PUBLISHED``), so an older plugin is
        checked against the members it was built for."""
        return self.major == spoken.major and self.minor <= spoken.minor

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


class PluginManifest(NamedTuple):
    """What a plugin declares about itself, before any of its code runs."""

    name: str
    slot: str
    contract: ContractVersion
    shell: str  # PEP 440 specifiers, as written; :func:`specifier` parses them
    requires: Mapping[str, str]
    capabilities: Mapping[str, frozenset[str]]
    commands: tuple[str, ...]
    assets: str = ""
    """A folder directly inside the plugin's package whose files the shell hands the plugin as
    verified bytes (:attr:`AppContext.assets`); empty: none."""


def parse_manifest(data: bytes, *, source: str, ranges: bool = True) -> PluginManifest:
    """Parse and validate manifest bytes; ``source`` names the file in error messages.

    ``ranges=False`` leaves the PEP 440 ranges (``shell``, ``[requires]``) as unparsed strings:
    discovery reads every candidate's manifest at every start, and the skew check parses the
    selected plugins' ranges (:func:`check_ranges`) whenever it evaluates them."""
    if len(data) > LIMITS.manifest_bytes:
        raise ManifestError(f"{source}: manifest larger than {LIMITS.manifest_bytes} bytes")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{source}: not valid TOML ({exc})") from exc
    except RecursionError:
        raise ManifestError(f"{source}: nested too deeply") from None
    plugin = _table(doc, "plugin", source, required=True)
    name = _string(plugin, "name", source)
    if not _NAME_RE.match(name):
        raise ManifestError(f"{source}: plugin.name {name!r} must be lowercase [a-z0-9._-]")
    slot = _string(plugin, "slot", source)
    if slot not in SLOTS:
        raise ManifestError(f"{source}: plugin.slot {slot!r} is not one of {', '.join(SLOTS)}")
    try:
        contract = ContractVersion.parse(_string(plugin, "contract", source))
    except ValueError as exc:
        raise ManifestError(f"{source}: plugin.contract: {exc}") from exc
    requires = {
        other: _range(spec, f"requires.{other}", source)
        for other, spec in _table(doc, "requires", source).items()
    }
    unknown = set(requires) - set(SLOTS)
    if unknown or slot in requires:
        bad = ", ".join(sorted(unknown | ({slot} & set(requires))))
        raise ManifestError(f"{source}: [requires] names {bad}; only other slots may be required")
    manifest = PluginManifest(
        name=name,
        slot=slot,
        contract=contract,
        shell=_range(_string(plugin, "shell", source), "plugin.shell", source),
        requires=requires,
        capabilities=_capabilities(_table(doc, "capabilities", source), source),
        commands=tuple(_string_list(plugin.get("commands", []), "plugin.commands", source)),
        assets=_assets(plugin, source),
    )
    if ranges:
        check_ranges(manifest, source=source)
    return manifest


def specifier(value: str, *, key: str, source: str) -> SpecifierSet:
    """A manifest range as a ``packaging`` :class:`SpecifierSet` (imported on first use)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(value)
    except InvalidSpecifier as exc:
        raise ManifestError(f"{source}: {key} {value!r} is not a PEP 440 specifier") from exc


def check_ranges(manifest: PluginManifest, *, source: str) -> None:
    """Raise :class:`ManifestError` unless every range of ``manifest`` is a PEP 440 specifier."""
    specifier(manifest.shell, key="plugin.shell", source=source)
    for other, value in manifest.requires.items():
        specifier(value, key=f"requires.{other}", source=source)


def _table(
    doc: Mapping[str, object], key: str, source: str, *, required: bool = False
) -> dict[str, object]:
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{source}: [{key}] table is missing or not a table")
    return value


def _string(table: Mapping[str, object], key: str, source: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{source}: plugin.{key} must be a non-empty string")
    return value


def _string_list(value: object, key: str, source: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{source}: {key} must be a list of strings")
    return list(value)


def _range(value: object, key: str, source: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{source}: {key} must be a version specifier string")
    return value


def _assets(plugin: Mapping[str, object], source: str) -> str:
    value = plugin.get("assets", "")
    if value == "":
        return ""
    if not isinstance(value, str) or not _ASSETS_RE.match(value):
        raise ManifestError(
            f"{source}: plugin.assets must name one folder of the package ([a-z0-9_-], "
            f"e.g. \"static\"), not {value!r}"
        )
    return value


def _capabilities(table: Mapping[str, object], source: str) -> dict[str, frozenset[str]]:
    return {
        kind: frozenset(_string_list(values, f"capabilities.{kind}", source))
        for kind, values in table.items()
    }
