"""4-bit embedding tables: GatherBlockQuantized runs exactly the grid we chose, and the
table takes a quarter of its int8 bytes."""

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.grouped import round_to_nearest
from slimsweep.sweeps.errors import ConfigError
from slimsweep.sweeps.runtimes.ort_session import OrtCpuConfig, OrtCpuRuntime


class Bag(torch.nn.Module):
    """An embedding table (used twice, as tied tables are) feeding a linear."""

    def __init__(self, rows: int, width: int) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(rows, width)
        self.out = torch.nn.Linear(width, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.table(ids).mean(1) + self.table(ids[:, :1]).squeeze(1))


def _artifact(model: torch.nn.Module, params: dict, ids: torch.Tensor, path: Path):
    compressed = STAGES.get("quantize").run(CompressedModel(model), params, StageContext(None))
    runtime = OrtCpuRuntime(OrtCpuConfig(name="ort_cpu", threads=1, compact_weights=False))
    runtime.export(compressed, {"ids": ids}, [], path)
    return runtime.load(path)


@pytest.mark.parametrize("group_size", [32, 128])  # 4 groups a row, and 3 (an odd count)
def test_embeddings_run_exactly_their_4_bit_grid_at_an_eighth_of_the_bytes(
    tmp_path: Path, group_size: int
) -> None:
    torch.manual_seed(0)
    model = Bag(1000, 384).eval()
    ids = torch.randint(0, 1000, (4, 16))
    params = {"precision": "int4_weight", "group_size": group_size}
    predict = _artifact(model, {**params, "embeddings": True}, ids, tmp_path / "e.onnx")
    _artifact(model, params, ids, tmp_path / "w.onnx")

    graph = onnx.load(tmp_path / "e.onnx").graph
    assert [n.op_type for n in graph.node].count("GatherBlockQuantized") == 2
    assert len([i for i in graph.initializer if i.name.endswith("__gq4")]) == 1  # packed once
    saved = (tmp_path / "w.onnx").stat().st_size - (tmp_path / "e.onnx").stat().st_size
    assert saved >= 1000 * 384 * 4 * (1 - 1 / 8 - 1.5 / group_size)  # scale + zero per group

    grid = round_to_nearest(model.table.weight, 4, group_size, symmetric=False)
    expected_table = torch.nn.Embedding.from_pretrained(grid.dequantize(384))
    reference = Bag(1000, 384)
    reference.load_state_dict(model.state_dict())
    reference.table = expected_table
    reference.out.weight.data = round_to_nearest(model.out.weight, 4, group_size, False).dequantize(
        384
    )
    with torch.no_grad():
        expected = reference(ids).numpy()
    np.testing.assert_allclose(predict({"ids": ids.numpy()}), expected, rtol=1e-4, atol=2e-2)


def test_embeddings_need_the_4_bit_precision() -> None:
    with pytest.raises(ConfigError, match="precision must be int4_weight, not 'int8_dynamic'"):
        STAGES.get("quantize").config_type(precision="int8_dynamic", embeddings=True)
