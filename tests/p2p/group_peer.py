"""Run a p2p plugin command as one profile, the way the shell does after a verified load (crypto
hook, transport hook, command), for the group tests (tests/p2p/test_groups_processes.py).

The "profile" is ``--home DIR`` (a directory the *test* owns): its identity in ``DIR/identity``
(made on first use, what ``AppContext.identity`` carries for an unlocked profile) and its store
in ``DIR/store.json`` (``tests.p2p.chat_peer.FileStore``, the file-backed stand-in of the
encrypted profile store; it is written atomically, so a killed process leaves a whole file):

    python -m tests.p2p.group_peer --home DIR listen --broker URL --loopback --id p0
    python -m tests.p2p.group_peer --home DIR group create friends
"""

from __future__ import annotations

import sys
from pathlib import Path

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_shell.contracts import AppContext
from tests.p2p.chat_peer import FileStore


def profile(home: Path) -> AppContext:
    """The p2p slot's context of the profile in ``home`` (identity and store)."""
    home.mkdir(parents=True, exist_ok=True)
    crypto = enkrypted_crypto_service(AppContext(home))
    identity_file = home / "identity"
    if not identity_file.is_file():
        identity_file.write_bytes(crypto.new_identity())
    return AppContext(home, store=FileStore(home / "store.json"),  # type: ignore[arg-type]
                      identity=identity_file.read_bytes())


def main(argv: list[str]) -> None:
    from enkrypted_p2p import plugin as p2p

    assert argv[0] == "--home", "usage: group_peer --home DIR COMMAND ..."
    home = Path(argv[1])
    context = profile(home)
    crypto = enkrypted_crypto_service(AppContext(home))
    p2p.enkrypted_transport_service(context, crypto)
    commands = {c.name: c for c in p2p.enkrypted_cli_commands(context)}
    commands[argv[2]].main(args=argv[3:], prog_name=f"enkrypted {argv[2]}")


if __name__ == "__main__":
    main(sys.argv[1:])
