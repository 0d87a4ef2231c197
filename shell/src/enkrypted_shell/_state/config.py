"""Per-profile home and configuration file (``<home>/config.toml``).

::

    [plugins]            # which plugin fills a slot when several are installed
    crypto = "crypto-nacl"

    [settings.crypto]    # handed to the slot's service hook as AppContext.settings
    layers = ["Signal", "AES"]
"""

from __future__ import annotations

__all__ = ["Config", "default_home", "load_config"]

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts import SLOTS
from ..errors import ShellUsageError
from ..limits import LIMITS
from .files import read_home_file


@dataclass(frozen=True, slots=True)
class Config:
    choices: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict)


def default_home() -> Path:
    """``ENKRYPTED_HOME``, else the platform's user data folder (platformdirs' ``user_data_dir``).

    On Linux the XDG rule is applied here without importing platformdirs, so the launcher can find
    the lock before any third-party library is imported (``_boot``); a test pins it to platformdirs.
    """
    env = os.environ.get("ENKRYPTED_HOME")
    if env:
        return Path(env)
    if sys.platform.startswith("linux"):
        data = os.environ.get("XDG_DATA_HOME", "").strip() or os.path.expanduser("~/.local/share")
        return Path(data) / "enkrypted"
    import platformdirs

    return Path(platformdirs.user_data_dir("enkrypted"))


def load_config(home: Path) -> Config:
    path = home / "config.toml"
    data = read_home_file(path, limit=LIMITS.policy_bytes)  # HomeError: wrong kind, unreadable
    if data is None:
        return Config()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ShellUsageError(f"{path}: unreadable configuration ({exc})") from exc
    plugins = doc.get("plugins", {})
    settings = doc.get("settings", {})
    if not isinstance(plugins, dict) or not all(isinstance(v, str) for v in plugins.values()):
        raise ShellUsageError(f"{path}: [plugins] must map slot names to plugin names")
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise ShellUsageError(f"{path}: [settings.<slot>] must be tables")
    unknown = (set(plugins) | set(settings)) - set(SLOTS)
    if unknown:
        raise ShellUsageError(f"{path}: unknown slot(s) {', '.join(sorted(unknown))}")
    return Config(dict(plugins), {k: dict(v) for k, v in settings.items()})
