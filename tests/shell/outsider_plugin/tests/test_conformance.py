"""The third-party plugin's own test, written as a plugin author would: the shell's conformance kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from enkrypted_shell.testing import ConformanceError, check_ui_service


@pytest.fixture
def echo_plugin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "src"))
    import acme_ui_echo.plugin

    return acme_ui_echo.plugin


def test_echo_ui_passes_the_ui_contract_kit(echo_plugin) -> None:
    check_ui_service(echo_plugin.EchoUI(crypto=None, transport=None), version="1.0")


def test_the_kit_refuses_a_broken_ui(echo_plugin) -> None:
    class AsyncRun:
        async def run(self, argv):  # the shell calls run() synchronously
            return 0

    with pytest.raises(ConformanceError, match="must not be async"):
        check_ui_service(AsyncRun())
