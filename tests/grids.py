"""The one check that an artifact carries the codes a stage chose, whatever runtime wrote it."""

import numpy as np

from slimsweep.compressors.plans import WeightOnlyPlan

Grid = tuple[np.ndarray, np.ndarray, np.ndarray]  # codes [out, in padded], scales, zero points


def assert_carries_exactly(grids: list[Grid], plan: WeightOnlyPlan) -> None:
    """Each grid the stage chose is in the artifact once, bit for bit: codes, float scales
    and zero points, and the artifact holds no other."""
    assert plan.codes is not None and len(grids) == len(plan.codes)
    for chosen in plan.codes.values():
        expected = (chosen.codes.numpy(), chosen.scales.numpy(), chosen.zeros.numpy())
        matches = [
            grid
            for grid in grids
            if all(
                a.shape == b.shape and np.array_equal(a, b)
                for a, b in zip(grid, expected, strict=True)
            )
        ]
        assert len(matches) == 1
