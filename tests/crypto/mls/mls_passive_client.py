"""The passive-client check shared by the three passive-client vector files.

A passive member joins from a Welcome, then processes every proposal and commit of each epoch;
its epoch_authenticator must match at every epoch.  This exercises the whole engine: Welcome,
tree validation, proposals by reference, UpdatePath decryption, PSKs, key schedule.
"""

from __future__ import annotations

from typing import Any

from mls_vector_harness import h

from enkrypted_crypto.mls import Group, GroupConfig, KeyPackageBundle
from enkrypted_crypto.mls._envelopes import MLSMessage
from enkrypted_crypto.mls._messages import KeyPackage, from_bytes


def check_passive_client(e: dict[str, Any]) -> None:
    kp = from_bytes(h(e["key_package"]), MLSMessage.decode).body
    assert isinstance(kp, KeyPackage)
    bundle = KeyPackageBundle(
        kp, h(e["init_priv"]), h(e["encryption_priv"]), h(e["signature_priv"])
    )
    config = GroupConfig(external_psks={h(p["psk_id"]): h(p["psk"]) for p in e["external_psks"]})
    tree = h(e["ratchet_tree"]) if e["ratchet_tree"] is not None else None
    group = Group.join(h(e["welcome"]), bundle, config, ratchet_tree=tree)
    assert group.epoch_authenticator == h(e["initial_epoch_authenticator"])
    for n, epoch in enumerate(e["epochs"]):
        for proposal in epoch["proposals"]:
            group.process(h(proposal))
        group.process(h(epoch["commit"]))
        assert group.epoch_authenticator == h(epoch["epoch_authenticator"]), f"epoch {n}"
