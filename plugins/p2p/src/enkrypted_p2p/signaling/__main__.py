"""``python -m enkrypted_p2p.signaling [options]``: the broker without the shell (tests, ops)."""

from ._command import broker_command

broker_command(prog_name="enkrypted broker")
