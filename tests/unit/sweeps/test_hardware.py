import optuna

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.driver import _hardware_refusal
from slimsweep.sweeps.hardware import fingerprint


def test_fingerprint_names_cpu_cores_and_gpu() -> None:
    cpu, cores, gpu = fingerprint().split(" | ")
    assert cpu and cores.endswith(" cores") and gpu


def test_a_second_fingerprint_is_refused_unless_allowed() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    strict = load_settings([])
    assert _hardware_refusal(strict, study, "cpu A | 2 cores | no GPU") is None  # the first sets it
    assert _hardware_refusal(strict, study, "cpu A | 2 cores | no GPU") is None
    refusal = _hardware_refusal(strict, study, "cpu B | 64 cores | H100")
    assert "cpu B | 64 cores | H100" in refusal and "search.allow_mixed_hardware=true" in refusal
    relaxed = load_settings(["search.allow_mixed_hardware=true"])
    assert _hardware_refusal(relaxed, study, "cpu B | 64 cores | H100") is None
