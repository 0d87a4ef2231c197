"""Installed environments made once per recipe and copied for each test (the ``environments``
session fixture in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tools.workspace import Env, clone_env, make_env


class Environments:
    """Installed environments by recipe: the first request for a recipe makes it with
    :func:`make_env` and :meth:`Env.install` as a user would; every request gets its own copy at
    its own path, byte for byte what the same install there gives (``clone_env``), to change at
    will.  A template is never handed out, so no test sees another's changes."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._templates: dict[tuple[object, ...], Env] = {}

    def make(self, dest: Path, *wheels: Path, requirements: tuple[str, ...] = (),
             with_pip: bool = False) -> Env:
        """``make_env(dest, with_pip=...)``, then ``install(*wheels)`` and
        ``install_requirements(*requirements)``, as a copy of the first such environment."""
        key = (tuple(str(w) for w in wheels), requirements, with_pip)
        template = self._templates.get(key)
        if template is None:
            folder = self._base / f"template-{len(self._templates)}"
            template = make_env(folder / "env", with_pip=with_pip)
            if wheels:
                template.install(*wheels)
            if requirements:
                template.install_requirements(*requirements)
            self._templates[key] = template
        return clone_env(template, dest)
