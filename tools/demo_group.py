"""The demo's group part: Alice, Bob and Carol in one MLS group, each in her or his own process.

Exactly what a user types (docs/operations.md §10): each person keeps a peer online with a stable
id, ``enkrypted --profile NAME listen --locked --id NAME`` in the background, and drives it from
short ``enkrypted --profile NAME group --locked ...`` commands (they reach the running peer through
its token-checked control endpoint).  Alice creates the group and adds Bob and Carol by peer id;
the demo waits on the three ``listen`` outputs until all show the same epoch and members, shows
the membership as Bob's ``listen`` printed it (peer ids and fingerprints, checked against each
profile's identity), has each member send a message and checks that the two others read it
exactly once and that the sender got both receipts; then Alice removes Carol, Bob writes again
while Carol's ``group list`` shows the group as ``left``, and Carol's process, still running,
never reads Bob's message.  Every wait is bounded; every process is stopped by its PID, on
failure, Ctrl-C and SIGTERM too.  Independent steps run at once (two adds, three sends) to keep
the demo short: each command is a whole verified, locked start of the shell.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tools.demo_chat import PASSPHRASE, _profile, _stop

_WAIT = 60.0
_NAMES = ("alice", "bob", "carol")
_SAID = {"alice": "hi both - Alice here; one MLS group, sealed once for all of us",
         "bob": "hello Alice and Carol, Bob reading you through the group's epoch keys",
         "carol": "Carol here: each of you reads this exactly once"}
_AFTER = "Bob, after Carol's removal: the group's keys moved on without her"


class Member:
    """One person's ``listen --id`` process; its JSON lines collected by a reader thread."""

    def __init__(self, user: Path, name: str, environ: dict[str, str], folder: Path) -> None:
        self.user, self.name, self.environ = user, name, environ
        self.errors = folder / f"{name}-listen.stderr"
        self.lines: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, command_args: Sequence[str]) -> None:
        argv = [str(self.user), "--profile", self.name, "listen", *command_args, "--id", self.name]
        with self.errors.open("w", encoding="utf-8") as errors:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                                         env=self.environ)
        print(f"$ enkrypted --profile {self.name} listen {' '.join(command_args)} --id "
              f"{self.name} &   (pid {self.proc.pid})", flush=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def of(self, event: str, group: str | None = None) -> list[dict[str, Any]]:
        return [e for e in list(self.lines)
                if e["event"] == event and (group is None or e.get("group") == group)]

    def texts(self, group: str) -> Counter[str]:
        return Counter(e["text"] for e in self.of("group-message", group))

    def view(self, group: str) -> tuple[int, frozenset[str]]:
        """The epoch and the members' peer ids of the latest membership this process printed."""
        changes = self.of("group-membership", group)
        if not changes:
            return -1, frozenset()
        return changes[-1]["epoch"], frozenset(m["peer"] for m in changes[-1]["members"])

    def tail(self) -> str:
        shown = [json.dumps(e)[:200] for e in self.lines[-4:]]
        errors = self.errors.read_text(encoding="utf-8", errors="replace")[-600:]
        return f"{self.name}: last lines {shown}; stderr ({self.errors}): {errors!r}"


def _until(check: Callable[[], bool], what: str, members: Sequence[Member]) -> None:
    deadline = time.monotonic() + _WAIT
    while not check():
        for member in members:
            if member.proc is not None and member.proc.poll() is not None:
                raise SystemExit(f"demo failed: {member.name}'s listen exited "
                                 f"{member.proc.returncode} ({what})\n{member.tail()}")
        if time.monotonic() > deadline:
            details = "\n".join(m.tail() for m in members)
            raise SystemExit(f"demo failed: not within {_WAIT:.0f} s: {what}\n{details}")
        time.sleep(0.1)


class GroupCommands:
    """``enkrypted --profile NAME group --locked ...``: started as a user would, answers parsed.
    The group's id (64 hex digits) is shown as ``$GROUP`` once it is known."""

    def __init__(self, user: Path, environ: dict[str, str], command_args: Sequence[str]) -> None:
        self.user, self.environ, self.command_args = user, environ, list(command_args)
        self.gid = ""
        self.started: list[subprocess.Popen[str]] = []

    def _shown(self, text: str) -> str:
        return text.replace(self.gid, "$GROUP") if self.gid else text

    def start(self, name: str, *argv: str) -> subprocess.Popen[str]:
        shown = " ".join(f'"{a}"' if " " in a else a for a in argv)
        print(self._shown(f"$ enkrypted --profile {name} group {' '.join(self.command_args)} "
                          f"{shown}"), flush=True)
        proc = subprocess.Popen([str(self.user), "--profile", name, "group", *self.command_args,
                                 *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.environ)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        """Stop any command still running (the demo failed or was interrupted), by its PID."""
        for proc in self.started:
            _stop(proc)

    def answers(self, proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
        """The command's JSON lines, once it exited 0 (else the demo fails)."""
        try:
            out, err = proc.communicate(timeout=_WAIT * 2)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise SystemExit(f"demo failed: {proc.args!r} did not finish") from None
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"demo failed: group command exited {proc.returncode}: "
                             f"{out[-400:]}{err[-400:]}")
        return lines

    def answer(self, proc: subprocess.Popen[str], who: str = "") -> dict[str, Any]:
        answer = self.answers(proc)[-1]
        print(self._shown(f"  {who}-> {json.dumps(answer, ensure_ascii=False)}"), flush=True)
        return answer

    def run(self, name: str, *argv: str) -> dict[str, Any]:
        return self.answer(self.start(name, *argv))


def group_chat(user: Path, environ: dict[str, str], fingerprints: dict[str, str], folder: Path,
               command_args: Sequence[str] = ()) -> None:
    """Carol joins Alice and Bob (whose identities are ``fingerprints``) in a group of three."""
    unlocked = {**environ, "ENKRYPTED_PASSPHRASE": PASSPHRASE}
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    members = {name: Member(user, name, unlocked, folder) for name in _NAMES}
    group = GroupCommands(user, unlocked, command_args)
    try:
        members["alice"].start(command_args)
        members["bob"].start(command_args)
        keys = {**fingerprints, "carol": _profile(user, unlocked, "carol")}  # while they start
        members["carol"].start(command_args)
        gid = _form(group, members, keys)
        sent = _talk(group, gid, members)
        _remove_carol(group, gid, members, keys)
        _check_once(gid, members, sent)
    finally:
        group.stop()
        for member in members.values():  # all at once: each takes a moment to close its links
            member.terminate()
        for member in members.values():
            member.stop()
        print("listeners stopped (pids "
              f"{', '.join(str(m.proc.pid) for m in members.values() if m.proc is not None)})",
              flush=True)
    print(f"group part: {time.monotonic() - started:.1f} s", flush=True)


def _form(group: GroupCommands, members: dict[str, Member], keys: dict[str, str]) -> str:
    """Alice creates the group (once her peer is up) and adds Bob and Carol by peer id."""
    everyone = list(members.values())
    _until(lambda: bool(members["alice"].of("listening")), "alice listening", everyone)
    gid = group.gid = str(group.run("alice", "create", "friends")["group"])
    print(f"  (GROUP={gid})", flush=True)
    _until(lambda: all(m.of("listening") for m in everyone), "bob and carol listening", everyone)
    adding = [group.start("alice", "add", gid, name) for name in ("bob", "carol")]  # at once
    for proc in adding:
        group.answer(proc)
    _converged(gid, everyone, frozenset(_NAMES))
    _show_membership(members["bob"].of("group-membership", gid)[-1], keys)
    return gid


def _talk(group: GroupCommands, gid: str, members: dict[str, Member]) -> dict[str, str]:
    """Everyone writes at once; each reads the two others once, each gets both receipts."""
    everyone = list(members.values())
    print("each member sends one message, all three at once:", flush=True)
    sending = {name: group.start(name, "send", gid, text) for name, text in _SAID.items()}
    sent = {name: str(group.answer(proc, f"{name} ")["messageId"])
            for name, proc in sending.items()}
    for name, member in members.items():
        others = set(_NAMES) - {name}
        _until(_reads(member, gid, [_SAID[other] for other in others]),
               f"{name} reads the two others' messages", everyone)
        _until(_receipts(member, gid, sent[name], others),
               f"{name}'s message receipted by the two others", everyone)
    for name, member in members.items():
        for event in member.of("group-message", gid):
            print(f"  {name:<5} reads {event['peer']:<5} (epoch {event['epoch']}, fingerprint "
                  f"{event['fingerprint'][:16]}…): {event['text']}", flush=True)
        print(f"  {name:<5} got receipts from {', '.join(sorted(_receipted(member, gid, sent[name])))}",
              flush=True)
    return sent


def _remove_carol(group: GroupCommands, gid: str, members: dict[str, Member],
                  keys: dict[str, str]) -> None:
    """Alice removes Carol; Bob writes again while Carol lists her groups from her own peer."""
    everyone, carol = list(members.values()), members["carol"]
    print("Alice removes Carol; Bob writes again; Carol's process keeps running:", flush=True)
    group.run("alice", "remove", gid, "carol")
    removed_at = _converged(gid, everyone[:2], frozenset({"alice", "bob"}))
    _until(lambda: bool(carol.of("group-left", gid)), "carol told she was removed", everyone)
    left = carol.of("group-left", gid)[-1]
    print(f"  carol's listen: group-left at epoch {left['epoch']}, by {_who(left['by'], keys)}",
          flush=True)
    sending, listing = group.start("bob", "send", gid, _AFTER), group.start("carol", "list")
    group.answer(sending, "bob ")
    view = next((g for g in group.answers(listing) if g.get("group") == gid), None)
    if view is None or view["state"] != "left":
        raise SystemExit(f"demo failed: carol's own view of the group is not 'left' ({view!r})")
    print(f"  carol -> group {view['name']!r}: state {view['state']} (her own peer's view)",
          flush=True)
    _until(lambda: members["alice"].texts(gid)[_AFTER] >= 1, "alice reads bob's last message",
           everyone)
    time.sleep(1.0)  # a late copy, or a duplicate, would show up now
    if _AFTER in carol.texts(gid):
        raise SystemExit("demo failed: carol read a message sent after her removal")
    print(f"  alice reads bob: {_AFTER}", flush=True)
    print(f"  carol's listen, still running, read nothing more: that message was sealed with "
          f"epoch {removed_at}'s keys, which the commit removing her never gave her", flush=True)


def _who(fingerprint: str, keys: dict[str, str]) -> str:
    names = [name for name, key in keys.items() if key == fingerprint]
    return f"{names[0]} ({fingerprint[:16]}…)" if names else f"{fingerprint[:16]}…"


def _receipted(member: Member, gid: str, message_id: str) -> set[str]:
    return {str(r["peer"]) for r in member.of("group-receipt", gid) if r["messageId"] == message_id}


def _reads(member: Member, gid: str, texts: Sequence[str]) -> Callable[[], bool]:
    return lambda: all(member.texts(gid)[text] >= 1 for text in texts)


def _receipts(member: Member, gid: str, message_id: str, peers: set[str]) -> Callable[[], bool]:
    return lambda: _receipted(member, gid, message_id) >= peers


def _converged(gid: str, members: Sequence[Member], expected: frozenset[str]) -> int:
    """Wait until every one of ``members`` printed the same epoch with exactly ``expected``."""
    def same() -> bool:
        views = {m.view(gid) for m in members}
        return len(views) == 1 and next(iter(views))[1] == expected

    _until(same, f"{' '.join(m.name for m in members)} agree on members {sorted(expected)}",
           members)
    epoch = members[0].view(gid)[0]
    print(f"  {', '.join(m.name for m in members)}: epoch {epoch}, members "
          f"{', '.join(sorted(expected))} (from each listen's group-membership line)", flush=True)
    return epoch


def _show_membership(change: dict[str, Any], keys: dict[str, str]) -> None:
    """The membership as Bob's ``listen`` printed it: peer ids, fingerprints, epoch."""
    by = f", committed by {_who(change['committer'], keys)}" if change.get("committer") else ""
    print(f"  bob's listen: group-membership {change['name']!r}, epoch {change['epoch']}{by}:",
          flush=True)
    for member in change["members"]:
        peer, fingerprint = member["peer"], member["fingerprint"]
        if keys.get(peer) != fingerprint:
            raise SystemExit(f"demo failed: {peer}'s fingerprint in the group is not her profile's")
        print(f"       {peer:<5} {fingerprint}  (= {peer}'s profile identity)", flush=True)


def _check_once(gid: str, members: dict[str, Member], sent: dict[str, str]) -> None:
    for name, member in members.items():
        counts = member.texts(gid)
        if any(n != 1 for n in counts.values()):
            raise SystemExit(f"demo failed: {name} read a group message twice ({counts})")
    removed_at = members["alice"].view(gid)[0]
    print(f"group: 3 processes, {len(sent)} messages each read exactly once by the two other "
          f"members and receipted by both; carol removed at epoch {removed_at}, the next message "
          "read by alice, not by carol", flush=True)
