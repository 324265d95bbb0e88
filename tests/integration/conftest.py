"""Fixtures of the integration tests: real headless Chromium (`browser`: a page's DOM after
its scripts ran, and screenshots; missing Chromium skips outside CI and fails in it), and a
real two-raylet Ray cluster on 127.0.0.1 (`cluster`)."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# The flags this machine needs: no sandbox as root, and no background networking (the closed
# network refuses it, many connections at a time).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Browser:
    def __init__(self, executable: str, profile: Path) -> None:
        self.executable, self.profile = executable, profile

    def dom(self, url: str, width: int = 1400, wait_ms: int = 0) -> str:
        """The DOM as the page left it; `wait_ms` of virtual time lets a single-page app
        fetch and draw."""
        budget = [f"--virtual-time-budget={wait_ms}"] if wait_ms else []
        return self._run(url, f"--window-size={width},1200", *budget, "--dump-dom").stdout

    def screenshot(self, url: str, path: Path, size: tuple[int, int]) -> None:
        self._run(url, f"--window-size={size[0]},{size[1]}", f"--screenshot={path}")

    def _run(self, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=180,
        )


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render pages in Chromium; `make test` installs it as root")
        pytest.skip("chromium is not installed")
    return Browser(executable, tmp_path / "chromium-profile")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, str, str]]:
    """(address, head node id, target node id): a head with one CPU, and a second raylet
    with one CPU and the target's resource (`target_cpu`), started as Ray's own tests do."""
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    target = nodes.add_node(num_cpus=1, resources={"target_cpu": 1})
    nodes.wait_for_nodes()
    yield nodes.address, nodes.head_node.node_id, target.node_id
    nodes.shutdown()
