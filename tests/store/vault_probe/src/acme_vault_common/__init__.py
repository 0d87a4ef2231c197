"""What both probe plugins do with their context: report it and use their store namespace.

Commands (``p2p-vault`` from the p2p plugin, ``ui-vault`` from the ui plugin):

    info              JSON: the namespace of context.store (or null), whether context.identity is
                      set, the crypto fingerprint of that identity (never the identity itself)
    put TABLE KEY V   context.store.put
    get TABLE KEY     context.store.get (prints the value, exit 3 when absent)
    fill STREAM       append 1, 2, 3, ... to STREAM and put the last one in table "last",
                      printing each number after it is committed; stops after --limit entries
    check STREAM      JSON: entries of STREAM and the value in "last"
"""

from __future__ import annotations

import hashlib
import json
import sys

import click

from enkrypted_shell.contracts import AppContext, CryptoService, ProfileStore, supports

CRYPTO: dict[str, CryptoService] = {}  # the crypto service each slot's service hook was given


def describe(slot: str, context: AppContext) -> dict[str, object]:
    store = getattr(context, "store", None)
    identity = getattr(context, "identity", None)
    crypto = CRYPTO.get(slot)
    return {
        "slot": slot,
        "namespace": store.namespace if store is not None and supports(store, ProfileStore) else None,
        "identity": identity is not None,
        "identity_in_repr": identity is not None and identity.hex() in repr(context),
        "fingerprint": crypto.fingerprint(identity) if crypto and identity else None,
        "identity_sha256": hashlib.sha256(identity).hexdigest() if identity else None,
    }


def _store(context: AppContext) -> ProfileStore:
    store = getattr(context, "store", None)
    if store is None:
        raise click.ClickException("no profile unlocked (context.store is None)")
    return store


def commands(name: str, slot: str, context: AppContext) -> click.Group:
    @click.group(name=name)
    def group() -> None:
        """Probe what the shell handed this slot."""

    @group.command()
    def info() -> None:
        click.echo(json.dumps(describe(slot, context), sort_keys=True))

    @group.command()
    @click.argument("table")
    @click.argument("key")
    @click.argument("value")
    def put(table: str, key: str, value: str) -> None:
        _store(context).put(table, key.encode(), value.encode())

    @group.command()
    @click.argument("table")
    @click.argument("key")
    def get(table: str, key: str) -> None:
        value = _store(context).get(table, key.encode())
        if value is None:
            sys.exit(3)
        click.echo(value.decode())

    @group.command()
    @click.argument("stream")
    @click.option("--limit", type=int, default=100_000)
    def fill(stream: str, limit: int) -> None:
        store = _store(context)
        click.echo("open")
        sys.stdout.flush()
        start = len(store.read(stream.encode(), limit=10_000))
        for n in range(start + 1, start + 1 + limit):
            store.append(stream.encode(), str(n).encode())
            store.put("last", stream.encode(), str(n).encode())
            click.echo(str(n))
            sys.stdout.flush()

    @group.command()
    @click.argument("stream")
    def check(stream: str) -> None:
        store = _store(context)
        entries = store.read(stream.encode(), limit=10_000)
        last = store.get("last", stream.encode())
        click.echo(json.dumps({
            "seqs": [seq for seq, _ in entries],
            "values": [int(v) for _, v in entries],
            "last": int(last) if last is not None else None,
        }))

    return group
