import copy

import pytest
import torch

from slimsweep.compressors import STAGES, CompressedModel, StageContext
from slimsweep.compressors.magnitude_prune import MagnitudePruneConfig, prunable_weights
from slimsweep.sweeps.errors import ConfigError


def _prune(model: torch.nn.Module, data, **params) -> torch.nn.Module:
    pruned = STAGES.get("magnitude_prune").run(
        CompressedModel(copy.deepcopy(model)), params, StageContext(data)
    )
    return pruned.module


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.55, 0.9])
def test_global_sparsity_is_exact_and_removes_the_smallest(
    trained_digits, digits_data, sparsity: float
) -> None:
    pruned = _prune(trained_digits, digits_data, sparsity=sparsity, scope="global")
    before = torch.cat([w.detach().flatten() for w in prunable_weights(trained_digits)])
    after = torch.cat([w.detach().flatten() for w in prunable_weights(pruned)])
    assert int((after == 0).sum()) == round(sparsity * before.numel())
    if sparsity > 0:
        kept = before[after != 0].abs()
        removed = before[after == 0].abs()
        assert removed.max() <= kept.min()  # nothing kept is smaller than anything removed
    assert torch.equal(after[after != 0], before[after != 0])  # survivors are untouched


def test_per_layer_scope_prunes_each_layer_to_target(trained_digits, digits_data) -> None:
    pruned = _prune(trained_digits, digits_data, sparsity=0.6, scope="per_layer")
    for weight in prunable_weights(pruned):
        assert int((weight == 0).sum()) == round(0.6 * weight.numel())


def test_biases_are_not_pruned(trained_digits, digits_data) -> None:
    pruned = _prune(trained_digits, digits_data, sparsity=0.9)
    for name, param in pruned.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(param, dict(trained_digits.named_parameters())[name])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sparsity": 1.0}, "sparsity=1.0 is out of range; allowed [0.0, 1.0)"),
        ({"sparsity": -0.1}, "sparsity=-0.1 is out of range"),
        ({"scope": "row"}, "scope='row' is not allowed; choose one of 'global', 'per_layer'"),
    ],
)
def test_config_refuses_bad_values(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        MagnitudePruneConfig(**params)
    assert message in str(error.value)
