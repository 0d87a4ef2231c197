"""``enkrypted plugins install`` / ``refresh`` against a real registry served on loopback.

One registry (our real plugin wheels, each published with its slot key) and one server per module;
the registry directory is restored after every test, so each attack starts from the published state.
Each test gets a throw-away environment with only the enkrypted-shell wheel installed and runs that
environment's ``enkrypted`` console script; real pip installs into it.  Every attack must exit
non-zero, name what was wrong, and leave nothing installed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enkrypted_registry import Repository, inspect_wheel, publish
from enkrypted_registry.attestation import provenance_document
from enkrypted_registry.index import ReleaseStore, write_index
from tests.environments import Environments
from tests.registry.support import PYTHON, pip_env, start_process
from tools.workspace import DISTS, Env, build_wheels, fresh_copy, plugin_libraries

pytestmark = pytest.mark.e2e

PROVENANCE, USAGE, NETWORK = 16, 2, 19
CORE = ("enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto")
SLOT_OF = {
    "enkrypted-p2p": "p2p",
    "enkrypted-p2p-memory": "p2p",
    "enkrypted-ui-cli": "ui",
    "enkrypted-crypto": "crypto",
    "enkrypted-crypto-nacl": "crypto",
}
CRYPTO_WHEEL = "plugins/crypto/enkrypted_crypto-0.2.0-py3-none-any.whl"
OUTSIDER = Path(__file__).resolve().parents[1] / "shell" / "outsider_plugin"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def built(dist_wheels: dict[str, Path]) -> dict[str, Path]:
    return {n: dist_wheels[n] for n in ["enkrypted-shell", *SLOT_OF]}


@dataclass
class Registry:
    repo: Repository
    url: str
    backup: Path

    @property
    def public(self) -> Path:
        return self.repo.public

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "enkrypted_registry", *args],
            capture_output=True,
            text=True,
            env=pip_env(),
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def registry(
    built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    base = tmp_path_factory.mktemp("install-registry")
    repo = Repository.init(base / "registry")
    for dist, slot in SLOT_OF.items():
        publish(repo, [built[dist]], repo.key(slot))
    backup = base / "pristine"
    shutil.copytree(repo.root, backup)
    proc, url = start_process(
        [PYTHON, "-m", "enkrypted_registry", "serve", str(repo.root), "--port", "0"],
        r"^serving (http://127\.0\.0\.1:\d+/)$",
    )
    try:
        yield Registry(repo, url, backup)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def pristine(registry: Registry) -> Iterator[None]:
    """Every test may tamper with the served registry; put the published state back afterwards."""
    yield
    shutil.rmtree(registry.repo.root)
    shutil.copytree(registry.backup, registry.repo.root)


@dataclass
class Result:
    code: int
    out: str
    err: str


class Client:
    """A throw-away environment with only the shell installed, and its `enkrypted` command."""

    def __init__(self, env: Env, home: Path, registry: Registry) -> None:
        self.env = env
        self.home = home
        self.registry = registry
        self.site = env.site_packages
        self.baseline = frozenset(p.name for p in self.site.iterdir())  # the shell and its libraries

    def run(self, *args: str, home: Path | None = None) -> Result:
        drop = ("PYTHONPATH", "ENKRYPTED_DEV", "ENKRYPTED_ALLOW_UNSIGNED", "ENKRYPTED_INDEX")
        environ = {k: v for k, v in os.environ.items() if k not in drop}
        environ["ENKRYPTED_HOME"] = str(home or self.home)
        proc = subprocess.run(
            [str(self.env.bin / "enkrypted"), *args],
            capture_output=True,
            text=True,
            env=environ,
            timeout=180,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def install(self, *names: str, home: Path | None = None, extra: tuple[str, ...] = ()) -> Result:
        return self.run(
            "plugins",
            "install",
            *names,
            "--index",
            self.registry.url,
            "--python",
            str(self.env.python),
            *extra,
            home=home,
        )

    def installed(self) -> list[str]:
        """What appeared in site-packages since the environment held only the shell and its libraries."""
        return sorted(
            p.name for p in self.site.iterdir() if p.name not in self.baseline and p.name != "__pycache__"
        )

    def records(self, home: Path | None = None) -> dict[str, dict[str, object]]:
        folder = (home or self.home) / "provenance"
        return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted(folder.glob("*.json"))}

    def log_events(self, home: Path | None = None) -> list[dict[str, object]]:
        path = (home or self.home) / "load-log.jsonl"
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]

    def assert_nothing_installed(self, home: Path | None = None) -> None:
        assert self.installed() == []
        assert self.records(home) == {}
        listed = subprocess.run(
            [str(self.env.python), "-m", "pip", "list", "--path", str(self.site)],
            capture_output=True,
            text=True,
            env=pip_env(),
            check=True,
        ).stdout
        assert "enkrypted-shell" in listed
        assert not any(name in listed for name in SLOT_OF), listed


@pytest.fixture
def client(
    tmp_path: Path, built: dict[str, Path], registry: Registry, environments: Environments
) -> Client:
    # The shell, and the plugins' third-party libraries as their user has them (`plugins install`
    # installs them only with --deps-index): pynacl for the nacl backend, aiohttp and redis for
    # the p2p plugin.  pip too: `plugins install` runs this environment's pip.
    env = environments.make(tmp_path / "env", built["enkrypted-shell"],
                            requirements=plugin_libraries(), with_pip=True)
    return Client(env, tmp_path / "home", registry)


def refused(res: Result, code: int, *needles: str) -> None:
    assert res.code == code, (res.code, res.out, res.err)
    for needle in needles:
        assert needle in res.err, (needle, res.err)


# ------------------------------------------------------------------------------- the happy path
def test_install_verify_run_then_revoke_and_refresh(client: Client, registry: Registry) -> None:
    res = client.install(*CORE)
    assert res.code == 0, res.err
    assert "PINNED the TUF root" in res.err and "CREATED" in res.err  # trust on first use, loudly
    assert "third-party dependencies were not installed" in res.out
    assert (client.home / "trust.toml").is_file()
    assert client.installed() == sorted(
        [f"{d.replace('-', '_')}-0.2.0.dist-info" for d in CORE]
        + ["enkrypted_crypto", "enkrypted_p2p", "enkrypted_ui_cli"]
    )
    records = client.records()
    assert sorted(records) == sorted(CORE)
    for dist, record in records.items():
        slot = SLOT_OF[dist]
        filename = f"{dist.replace('-', '_')}-0.2.0-py3-none-any.whl"
        served = registry.public / "plugins" / slot / filename
        assert record["slot"] == record["tuf_role"] == slot
        assert record["target_path"] == f"plugins/{slot}/{filename}"
        assert record["wheel_sha256"] == hashlib.sha256(served.read_bytes()).hexdigest()
        assert record["index"] == registry.url and record["revoked"] is None
        assert record["provenance"] == json.loads(Path(f"{served}.provenance").read_bytes())
    installed = [e for e in client.log_events() if e["event"] == "installed"]
    assert sorted(str(e["distribution"]) for e in installed) == sorted(CORE)

    verify = client.run("plugins", "verify")
    assert verify.code == 0, verify.err
    # the scripted run is offline: it needs the in-process transport (p2p-webrtc needs a broker)
    assert client.install("enkrypted-p2p-memory").code == 0
    run = client.run("--p2p", "p2p-memory", "run")
    assert run.code == 0, run.err
    assert "messages delivered intact: True" in run.out

    # A second install uses the pinned root and the existing trust.toml: nothing announced.
    again = client.install("enkrypted-crypto==0.2.0")
    assert again.code == 0, again.err
    assert "PINNED" not in again.err and "CREATED" not in again.err

    # The operator revokes an installed release; refresh marks the record, and the shell refuses it.
    revoke = registry.cli(
        "revoke", str(registry.repo.root), "enkrypted-p2p==0.2.0", "--reason", "CVE-TEST-1"
    )
    assert revoke.returncode == 0, revoke.stderr
    fresh = client.run("plugins", "refresh")
    assert fresh.code == 0, fresh.err
    assert "REVOKED enkrypted-p2p 0.2.0" in fresh.err and "1 newly revoked" in fresh.out
    record = client.records()["enkrypted-p2p"]
    assert isinstance(record["revoked"], dict)
    assert record["revoked"]["reason"] == (
        "target plugins/p2p/enkrypted_p2p-0.2.0-py3-none-any.whl removed from p2p metadata"
    )
    assert all(
        client.records()[d]["revoked"] is None for d in ("enkrypted-ui-cli", "enkrypted-crypto")
    )
    assert [e["distribution"] for e in client.log_events() if e["event"] == "revoked"] == [
        "enkrypted-p2p"
    ]
    twice = client.run("plugins", "refresh")
    assert twice.code == 0 and "0 newly revoked, 1 already revoked" in twice.out
    refused(client.run("--p2p", "p2p-webrtc", "plugins", "verify"), PROVENANCE, "revoked")


def test_two_crypto_backends_lock_and_run_locked(client: Client, registry: Registry) -> None:
    """Three plugins and two crypto backends from the registry; the lock pins the wheel digest,
    index and signer; `run --locked` enforces them; tampering after install is refused."""
    res = client.install(*CORE, "enkrypted-p2p-memory", "enkrypted-crypto-nacl")
    assert res.code == 0, res.err
    refused(client.run("--p2p", "p2p-memory", "plugins", "lock"), 14, "crypto-pyca", "crypto-nacl")
    locked = client.run("--crypto", "crypto-nacl", "--p2p", "p2p-memory", "plugins", "lock")
    assert locked.code == 0, locked.err
    lock = tomllib.loads((client.home / "plugins.lock.toml").read_text("utf-8"))
    rows = {row["slot"]: row for row in lock["packages"]}
    assert rows["crypto"]["name"] == "enkrypted-crypto-nacl"
    # the nacl backend imports enkrypted-crypto's protocol code: pinned with it
    assert [d.split(" ")[0] for d in rows["crypto"]["dependencies"]] == ["enkrypted-crypto==0.2.0"]
    records = client.records()
    for row in rows.values():
        record = records[str(row["name"])]
        assert row["wheel-sha256"] == record["wheel_sha256"]
        assert row["index"] == registry.url and len(row["signer"]) == 64
    graph = client.run("plugins", "graph", "--locked")
    assert graph.code == 0, graph.err
    assert graph.out.count("signed by") == 3 and f"from {registry.url}" in graph.out
    assert "imports plugin code of enkrypted-crypto==0.2.0 sha256:" in graph.out
    run = client.run("run", "--locked")  # the lock alone selects the nacl backend
    assert run.code == 0, run.err
    assert "crypto backend: pynacl" in run.out and "delivered intact: True" in run.out
    audit = json.loads(client.run("plugins", "audit", "--locked", "--json").out)
    signers = {p["plugin"]: (p["signer"], p["tuf_role"]) for p in audit["plugins"]}
    assert signers["crypto-nacl"][1] == "crypto" and signers["ui-cli"][1] == "ui"
    assert len({signer for signer, _ in signers.values()}) == 3  # one key per slot

    memory = client.site / "enkrypted_p2p_memory" / "memory.py"
    memory.write_text(memory.read_text("utf-8") + "\n# altered after install\n", "utf-8")
    refused(client.run("run", "--locked"), 10, "enkrypted_p2p_memory/memory.py")


def test_edited_provenance_record_is_refused_at_load(client: Client, registry: Registry) -> None:
    assert client.install(*CORE).code == 0
    path = client.home / "provenance" / "enkrypted-ui-cli.json"
    record = json.loads(path.read_text("utf-8"))
    record["slot"] = record["tuf_role"] = "crypto"  # the store itself is not trusted
    record["provenance"]["attestation_bundles"][0]["publisher"]["slot"] = "crypto"
    path.write_text(json.dumps(record), "utf-8")
    assert client.run("plugins", "verify").code == 0  # the signed statement still says ui
    record = json.loads(path.read_text("utf-8"))
    envelope = record["provenance"]["attestation_bundles"][0]["attestations"][0]
    envelope["payload"] = envelope["payload"][:-8] + "AAAAAAA="
    path.write_text(json.dumps(record), "utf-8")
    refused(client.run("plugins", "verify"), PROVENANCE, "ui-cli")


def test_explicit_root_and_a_foreign_root(
    client: Client, registry: Registry, tmp_path: Path
) -> None:
    foreign = Repository.init(tmp_path / "other-registry").tuf_dir / "1.root.json"  # other keys
    res = client.install("enkrypted-p2p", extra=("--root", str(foreign)))
    refused(res, PROVENANCE, "TUF refused", "UnsignedMetadataError")
    client.assert_nothing_installed()
    assert not list((client.home / "tuf").glob("*/root.json"))  # a root that failed is not kept
    ours = registry.repo.tuf_dir / "1.root.json"
    res = client.install("enkrypted-p2p", extra=("--root", str(ours)))
    assert res.code == 0, res.err
    assert "PINNED" not in res.err and "using the TUF root from" in res.err
    assert sorted(client.records()) == ["enkrypted-p2p"]
    # Once pinned, another root of the same version is refused, not silently swapped in.
    res = client.install("enkrypted-ui-cli", extra=("--root", str(foreign)))
    refused(res, PROVENANCE, "differs from the root version 1 pinned")
    assert sorted(client.records()) == ["enkrypted-p2p"]


def test_deps_index_never_fetches_registry_projects(client: Client, registry: Registry) -> None:
    """With --deps-index, third-party requirements go to that index; plugin projects never do.
    (enkrypted-crypto-nacl requires enkrypted-crypto - a registry project - and pynacl, which the
    environment already has, so pip resolves without downloading.)"""
    res = client.install("enkrypted-crypto-nacl", extra=("--deps-index", f"{registry.url}simple/"))
    assert res.code == 0, res.err
    assert "resolving third-party dependencies" in res.err
    assert "enkrypted_crypto_nacl-0.2.0.dist-info" in client.installed()
    assert "enkrypted_crypto-0.2.0.dist-info" not in client.installed()


# -------------------------------------------------------------------------------------- attacks
def test_wheel_altered_on_server(client: Client, registry: Registry) -> None:
    wheel = registry.public / CRYPTO_WHEEL
    data = bytearray(wheel.read_bytes())
    data[200] ^= 0xFF
    wheel.write_bytes(bytes(data))
    res = client.install(*CORE)
    refused(res, PROVENANCE, "LengthOrHashMismatchError", CRYPTO_WHEEL)
    client.assert_nothing_installed()


def test_crypto_provenance_signed_by_the_ui_key(
    client: Client, registry: Registry, built: dict[str, Path]
) -> None:
    """TUF alone is not enough: even a crypto target listed by the crypto role is refused when its
    provenance is signed by the ui key (the trust.toml bootstrapped from TUF allows only the crypto
    key for slot crypto)."""
    repo = registry.repo
    ui_key = repo.key("ui")
    forged = provenance_document(
        inspect_wheel(built["enkrypted-crypto"]), ui_key.private, ui_key.keyid
    )
    (registry.public / f"{CRYPTO_WHEEL}.provenance").write_bytes(forged)
    md = repo.update_slot_targets(
        "crypto", repo.key("crypto"), {f"{CRYPTO_WHEEL}.provenance": forged}
    )
    repo.commit({"crypto": md})
    res = client.install("enkrypted-p2p", "enkrypted-crypto")
    refused(res, PROVENANCE, "provenance for crypto plugin signed by the ui key")
    client.assert_nothing_installed()


def test_rollback_to_older_signed_metadata(client: Client, registry: Registry) -> None:
    tuf = registry.repo.tuf_dir
    old = {name: (tuf / name).read_bytes() for name in ("timestamp.json", "snapshot.json")}
    registry.repo.refresh("snapshot")  # newer snapshot + timestamp
    res = client.install("enkrypted-p2p")
    assert res.code == 0, res.err  # the client now trusts the newer versions
    before = client.records()
    for name, data in old.items():  # the mirror replays the older, validly signed state
        (tuf / name).write_bytes(data)
    res = client.install("enkrypted-crypto")
    refused(res, PROVENANCE, "BadVersionNumberError", "rollback")
    assert client.installed() == ["enkrypted_p2p", "enkrypted_p2p-0.2.0.dist-info"]
    refused(client.run("plugins", "refresh"), PROVENANCE, "BadVersionNumberError")
    assert client.records() == before  # a failed refresh changes no record


def test_freeze_expired_timestamp(client: Client, registry: Registry) -> None:
    past = Repository(registry.repo.root, now=lambda: datetime.now(UTC) - timedelta(days=30))
    past.refresh("timestamp")  # validly signed, expired 23 days ago
    res = client.install(*CORE)
    refused(res, PROVENANCE, "ExpiredMetadataError", "freeze")
    client.assert_nothing_installed()


def test_mix_and_match(client: Client, registry: Registry, tmp_path: Path) -> None:
    tuf = registry.repo.tuf_dir
    # 1. A new timestamp served with an old (validly signed) snapshot: timestamp pins its hash.
    old_snapshot = (tuf / "snapshot.json").read_bytes()
    registry.repo.refresh("snapshot")
    new_snapshot = (tuf / "snapshot.json").read_bytes()
    (tuf / "snapshot.json").write_bytes(old_snapshot)
    refused(client.install("enkrypted-crypto"), PROVENANCE, "LengthOrHashMismatchError")
    client.assert_nothing_installed()
    # 2. The current snapshot with an old (validly signed) crypto role: snapshot pins its version.
    (tuf / "snapshot.json").write_bytes(new_snapshot)
    old_crypto = (tuf / "crypto.json").read_bytes()
    revoked = registry.cli("revoke", str(registry.repo.root), "enkrypted-crypto-nacl==0.2.0")
    assert revoked.returncode == 0, revoked.stderr
    (tuf / "crypto.json").write_bytes(old_crypto)
    other_home = tmp_path / "home2"
    res = client.install("enkrypted-crypto", home=other_home)
    refused(res, PROVENANCE, "BadVersionNumberError", "crypto")
    client.assert_nothing_installed(other_home)


def test_replaced_wheel_with_a_valid_looking_index(
    client: Client, registry: Registry, tmp_path: Path
) -> None:
    src = fresh_copy(DISTS["enkrypted-crypto"], tmp_path / "evil-src")
    plugin = src / "src" / "enkrypted_crypto" / "plugin.py"
    plugin.write_text(plugin.read_text("utf-8") + "\n# replaced by an attacker\n", "utf-8")
    evil = build_wheels([src], tmp_path / "evil")[0]
    target = registry.public / CRYPTO_WHEEL
    assert evil.name == target.name
    old_sha = hashlib.sha256(target.read_bytes()).hexdigest()
    new_sha = hashlib.sha256(evil.read_bytes()).hexdigest()
    shutil.copyfile(evil, target)
    page = registry.public / "simple" / "enkrypted-crypto"
    doc = json.loads((page / "index.json").read_text("utf-8"))
    doc["files"][0]["hashes"]["sha256"] = new_sha
    doc["files"][0]["size"] = evil.stat().st_size
    (page / "index.json").write_text(json.dumps(doc), "utf-8")
    html = (page / "index.html").read_text("utf-8")
    (page / "index.html").write_text(html.replace(old_sha, new_sha), "utf-8")
    # Stock pip is fooled: the index's #sha256 matches the replaced file.
    fooled = subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "download",
            "-q",
            "--isolated",
            "--no-deps",
            "--index-url",
            f"{registry.url}simple/",
            "enkrypted-crypto==0.2.0",
            "-d",
            str(tmp_path / "dl"),
        ],
        capture_output=True,
        text=True,
        env=pip_env(),
        timeout=120,
        check=False,
    )
    assert fooled.returncode == 0, fooled.stderr
    # TUF is not: the signed target still pins the original length and hash.
    res = client.install(*CORE)
    refused(res, PROVENANCE, f"TUF refused downloading {CRYPTO_WHEEL}")
    assert "DownloadLengthMismatchError" in res.err or "LengthOrHashMismatchError" in res.err
    client.assert_nothing_installed()


def test_unsigned_plugin_listed_in_the_index(
    client: Client, registry: Registry, tmp_path: Path
) -> None:
    wheel = build_wheels([OUTSIDER], tmp_path / "outsider")[0]
    shutil.copyfile(wheel, registry.public / "plugins" / "ui" / wheel.name)
    store = ReleaseStore(registry.repo.root / "releases.json")
    info = inspect_wheel(wheel)
    store.projects[info.normalized_name] = {
        "name": info.name,
        "slot": "ui",
        "files": {
            wheel.name: {
                "filename": wheel.name,
                "version": info.version,
                "slot": "ui",
                "plugin": info.plugin,
                "sha256": info.sha256,
                "size": info.size,
                "requires_python": info.requires_python,
                "metadata_sha256": hashlib.sha256(info.core_metadata).hexdigest(),
                "content_digest": info.content_digest,
                "publisher": "nobody",
                "upload_time": "2026-01-01T00:00:00.000000Z",
                "yanked": None,
            }
        },
    }
    write_index(registry.public, store)
    res = client.install("acme-ui-echo")
    refused(res, PROVENANCE, "no signed release of acme-ui-echo")
    client.assert_nothing_installed()


def test_revoked_release_is_not_installed(client: Client, registry: Registry) -> None:
    revoked = registry.cli(
        "revoke", str(registry.repo.root), "enkrypted-crypto-nacl==0.2.0", "--reason", "CVE-TEST-2"
    )
    assert revoked.returncode == 0, revoked.stderr
    refused(
        client.install("enkrypted-crypto-nacl"),
        PROVENANCE,
        "no signed release of enkrypted-crypto-nacl",
    )
    refused(client.install("enkrypted-crypto-nacl==0.2.0"), PROVENANCE, "revoked")
    client.assert_nothing_installed()
    events = [e for e in client.log_events() if e["event"] == "install-refused"]
    assert len(events) == 2 and all(e["rule"] == "ProvenanceError" for e in events)


def test_unreachable_index_and_bad_arguments(client: Client, registry: Registry) -> None:
    """A network failure has its own exit code (docs/errors.md: 19), distinct from a refusal."""
    res = client.run("plugins", "install", "enkrypted-p2p", "--index", "http://127.0.0.1:9/")
    refused(res, NETWORK, "cannot reach the registry at http://127.0.0.1:9/")
    tls = registry.url.replace("http://", "https://")  # TLS to a plain-HTTP server fails
    refused(client.run("plugins", "install", "enkrypted-p2p", "--index", tls), NETWORK, "cannot reach")
    refused(client.install("enkrypted-p2p>=0.1"), USAGE, "is not NAME or NAME==VERSION")
    res = client.run("plugins", "install", "enkrypted-p2p", "--index", "ftp://example/")
    refused(res, USAGE, "is not an http(s) URL")
    refused(client.install("enkrypted-p2p", "enkrypted_P2P"), USAGE, "requested more than once")
    assert client.run("plugins", "refresh").out.startswith("no plugin was installed")
    client.assert_nothing_installed()


def test_sigstore_rules_at_install(
    client: Client, registry: Registry, built: dict[str, Path], tmp_path: Path
) -> None:
    """Install runs verify_release: a slot requiring Sigstore refuses a release without a bundle;
    a release whose bundle signs the wheel's digest but does not verify is refused, whether the
    policy lists no identity or the bundle's own."""
    from cryptography.hazmat.primitives import serialization

    from enkrypted_registry.attestation import read_sigstore_bundle
    from tests.registry.test_sigstore import GITHUB_ACTIONS, RFC8785_WORKFLOW, vector

    client.env.install_requirements("sigstore")  # the shell's `sigstore` extra
    client.baseline = frozenset(p.name for p in client.site.iterdir())

    repo = registry.repo
    raw = (
        repo.key("crypto")
        .private.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    requiring = (
        f'[slots.crypto]\nkeys = ["{raw.hex()}"]\n'
        f'sigstore = [{{ identity = "{RFC8785_WORKFLOW}", issuer = "{GITHUB_ACTIONS}" }}]\n'
    )
    home = tmp_path / "requiring"
    home.mkdir()
    (home / "trust.toml").write_text(requiring)
    res = client.install("enkrypted-crypto", home=home)
    refused(res, PROVENANCE, "trust.toml requires a Sigstore bundle for slot crypto")
    client.assert_nothing_installed(home)

    # The real GitHub bundle, its messageDigest rewritten to the wheel's sha256: bound to the
    # wheel, published as a valid TUF target, but its signature is not over that digest.
    info = inspect_wheel(built["enkrypted-crypto"])
    bundle = json.loads(vector("bundle_v3_github.whl.sigstore"))
    digest = hashlib.sha256(built["enkrypted-crypto"].read_bytes()).digest()
    bundle["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(digest).decode()
    sigstore = read_sigstore_bundle(json.dumps(bundle).encode(), info, source="test bundle")
    key = repo.key("crypto")
    document = provenance_document(info, key.private, key.keyid, sigstore=sigstore)
    (registry.public / f"{CRYPTO_WHEEL}.provenance").write_bytes(document)
    md = repo.update_slot_targets("crypto", key, {f"{CRYPTO_WHEEL}.provenance": document})
    repo.commit({"crypto": md})

    res = client.install("enkrypted-crypto", home=home)
    refused(res, PROVENANCE, "Sigstore bundle 1 of", "does not verify", "sigstore bundle rejected")
    client.assert_nothing_installed(home)
    res = client.install("enkrypted-crypto")  # trust.toml from TUF: keys only, no identity
    refused(res, PROVENANCE, "trust.toml lists no Sigstore identity for slot crypto")
    client.assert_nothing_installed()
    assert client.log_events()[-1]["event"] == "install-refused"


def test_a_release_listed_by_two_slot_roles_is_refused_alone(
    client: Client, registry: Registry, tmp_path: Path
) -> None:
    """The ui key lists the p2p wheel under ui too: that release is ambiguous and never installed,
    naming which role lists what; a release only the p2p role publishes is not blocked by it."""
    repo = registry.repo
    name = "enkrypted_p2p-0.2.0-py3-none-any.whl"
    wheel = (registry.public / "plugins" / "p2p" / name).read_bytes()
    prov = (registry.public / "plugins" / "p2p" / f"{name}.provenance").read_bytes()
    (registry.public / "plugins" / "ui" / name).write_bytes(wheel)
    (registry.public / "plugins" / "ui" / f"{name}.provenance").write_bytes(prov)
    md = repo.update_slot_targets(
        "ui", repo.key("ui"), {f"plugins/ui/{name}": wheel, f"plugins/ui/{name}.provenance": prov}
    )
    repo.commit({"ui": md})
    refused(client.install("enkrypted-p2p"), PROVENANCE, "a release belongs to one slot", "by roles p2p, ui")
    client.assert_nothing_installed()

    source = fresh_copy(DISTS["enkrypted-p2p"], tmp_path / "p2p-021")
    init = source / "src" / "enkrypted_p2p" / "__init__.py"
    init.write_text(init.read_text("utf-8").replace('"0.2.0"', '"0.2.1"'), "utf-8")
    newer = build_wheels([source], tmp_path / "p2p-021-wheel")[0]
    publish(repo, [newer], repo.key("p2p"))
    res = client.install("enkrypted-p2p")
    assert res.code == 0, res.err
    assert "enkrypted_p2p-0.2.1.dist-info" in client.installed()
