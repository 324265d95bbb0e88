"""The sweep's baseline is one file: made (or taken from a cache) once, and written byte for
byte into every node's cache before a trial, even over a different file that node trained."""

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.baseline import ShippedBaseline, _placed, baseline_file, place


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_every_node_loads_the_file_that_was_shipped(
    local_ray, baseline_cache: Path, trained_digits, tmp_path: Path
) -> None:
    import ray

    spec = load_settings([]).worker_spec()
    name, sha256, content = baseline_file(spec, str(baseline_cache))
    assert (baseline_cache / name).read_bytes() == content  # the cache's file, not a new one
    assert hashlib.sha256(content).hexdigest() == sha256
    shipped = ShippedBaseline(name, sha256, ray.put(content))

    empty, other = tmp_path / "empty-node", tmp_path / "node-with-its-own"
    other.mkdir()
    # a node whose CPU trained other weights from the same seed
    theirs = {k: v + 0.01 for k, v in torch.load(baseline_cache / name).items()}
    torch.save(theirs, other / name)
    for node in (empty, other):
        place(shipped, str(node))
        assert (node / name).read_bytes() == content, node.name
    _placed.clear()


def test_bytes_that_do_not_match_their_sha256_are_refused(
    local_ray, baseline_cache: Path, trained_digits, tmp_path: Path
) -> None:
    import ray

    name = next(p.name for p in baseline_cache.glob("*.pt"))
    shutil.copy(baseline_cache / name, tmp_path / "stale.pt")
    shipped = ShippedBaseline(name, "0" * 64, ray.put(b"not the baseline"))
    with pytest.raises(RuntimeError, match="changed in transit"):
        place(shipped, str(tmp_path / "node"))
    assert not (tmp_path / "node" / name).exists()
    _placed.clear()
