"""Session-wide fixtures: the workspace's wheels built once, and installed environments made once
per recipe and then copied for each test that needs one (tests/environments.py).

Under pytest-xdist "once" is once per worker process: each worker has its own session and its own
``tmp_path_factory`` base, so nothing here is shared between processes.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.environments import Environments  # noqa: E402
from tools.workspace import DISTS, build_wheels  # noqa: E402


@pytest.fixture(scope="session")
def dist_wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A wheel of every distribution of the workspace, by distribution name (read-only: a test
    that needs an altered wheel builds its own)."""
    out = tmp_path_factory.mktemp("dist-wheels")
    return dict(zip(DISTS, build_wheels(list(DISTS.values()), out), strict=True))


@pytest.fixture(scope="session")
def environments(tmp_path_factory: pytest.TempPathFactory) -> Environments:
    return Environments(tmp_path_factory.mktemp("environments"))


LONG_MARKERS = ("soak", "e2e", "slow")  # longest first


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In parallel runs (pytest-xdist), modules go in the order of their longest kind of test:
    soak, then e2e, then slow, then the rest, each module kept whole and in its order.  The
    longest tests start early and the many short ones fill the workers at the end, instead of
    one long test starting last and running alone.  A serial run keeps pytest's order."""
    if not getattr(config.option, "numprocesses", None):
        return
    rank: dict[Path, int] = {}
    for item in items:
        kinds = [i for i, name in enumerate(LONG_MARKERS) if item.get_closest_marker(name)]
        rank[item.path] = min([rank.get(item.path, len(LONG_MARKERS)), *kinds])
    items.sort(key=lambda item: rank[item.path])
