import optuna

from slimsweep.sweeps.config import load_settings
from slimsweep.sweeps.engine.hardware import fingerprint
from slimsweep.sweeps.engine.recording import Recorder
from slimsweep.sweeps.progress import LineProgress


def test_fingerprint_names_cpu_cores_and_gpu() -> None:
    cpu, cores, gpu = fingerprint().split(" | ")
    assert cpu and cores.endswith(" cores") and gpu


def test_a_second_fingerprint_is_refused_unless_allowed() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    strict = Recorder(load_settings([]), study, None, LineProgress())
    assert strict.hardware_refusal("cpu A | 2 cores | no GPU") is None  # the first sets it
    assert strict.hardware_refusal("cpu A | 2 cores | no GPU") is None
    refusal = strict.hardware_refusal("cpu B | 64 cores | H100")
    assert "cpu B | 64 cores | H100" in refusal and "search.allow_mixed_hardware=true" in refusal
    relaxed = Recorder(load_settings(["search.allow_mixed_hardware=true"]), study, None, None)
    assert relaxed.hardware_refusal("cpu B | 64 cores | H100") is None
