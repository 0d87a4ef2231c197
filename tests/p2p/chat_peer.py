"""Run a p2p plugin command the way the shell does after a verified load, without installing
wheels: crypto service first (the crypto plugin's hook), then the p2p plugin's transport hook
given that crypto service, then the p2p plugin's commands. The real shell path is covered by the
e2e test (test_chat_processes.py::test_listen_and_send_through_the_real_shell).

    python -m tests.p2p.chat_peer listen --broker ws://127.0.0.1:PORT/ --loopback
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p import plugin as p2p
from enkrypted_shell.contracts import AppContext


def main(argv: list[str]) -> None:
    home = Path(tempfile.mkdtemp(prefix="enkrypted-chat-"))
    crypto = enkrypted_crypto_service(AppContext(home))
    p2p.enkrypted_transport_service(AppContext(home), crypto)
    commands = {c.name: c for c in p2p.enkrypted_cli_commands(AppContext(home))}
    commands[argv[0]].main(args=argv[1:], prog_name=f"enkrypted {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
