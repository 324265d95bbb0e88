import re
from pathlib import Path

import pytest
import torch

from slimsweep.sweeps.config import check_objectives, compose, load_settings
from slimsweep.sweeps.errors import ConfigError


def test_defaults_compose_into_checked_settings(tmp_path: Path) -> None:
    settings = load_settings([f"sweep.dir={tmp_path}"])
    assert settings.sweep.name == "digits_cnn-digits"
    assert settings.sweep.storage == f"sqlite:///{tmp_path}/optuna.db"
    assert settings.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings.metric_names() == ["accuracy", "size_bytes", "latency_ms_median"]
    assert settings.runtime.threads == settings.cluster.cpus_per_trial == 1
    assert [slot.name for slot in settings.space.slots] == ["prune", "quantize"]


def test_relative_sweep_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert compose(["sweep.dir=runs"])["sweep"]["dir"] == str(tmp_path / "runs")


def test_a_space_narrowed_to_what_the_runtime_runs_is_accepted() -> None:
    settings = load_settings(
        ["runtime=torch_cpu", "space.recipe.quantize.precision.choices=[fp32,fp16]"]
    )
    assert settings.runtime.name == "torch_cpu"


def test_overrides_reach_the_settings() -> None:
    settings = load_settings(["search.n_trials=12", "search.parallelism=3", "sweep.name=x"])
    assert (settings.search.n_trials, settings.search.parallelism, settings.sweep.name) == (
        12,
        3,
        "x",
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "search.n_trail=3",
            "unknown key 'search.n_trail'; allowed keys there: sampler, n_trials, parallelism",
        ),
        ("+search.n_trail=3", "unknown key 'search.n_trail'; allowed keys: n_trials, parallelism"),
        ("colour=red", "unknown key 'colour'; allowed keys there: task, space"),
        ("search.n_trials=0", "search.n_trials=0 must be at least 1"),
        (
            "search.n_trials=many",
            "search.n_trials: Value 'many' of type 'str' could not be converted",
        ),
        ("search.parallelism=0", "search.parallelism=0 must be at least 1"),
        (
            "search.objectives=[{metric: size_bytes, direction: down}]",
            "direction='down' is not allowed; choose one of 'maximize', 'minimize'",
        ),
        ("runtime.latency.repeats=0", "runtime.latency.repeats=0 must be at least 1"),
        (
            "runtime.name=tensorrt",
            "unknown runtime 'tensorrt'; registered: openvino_cpu, ort_cpu, ort_cuda",
        ),
        (
            "runtime.exporter=jit",
            "runtime.exporter='jit' is not allowed; choose one of 'dynamo', 'torchscript', 'auto'",
        ),
        ("cluster.cpus_per_trial=0", "cluster.cpus_per_trial=0 must be at least 1"),
        (  # the dict that cluster=ray sets: Hydra would merge, so the message says how to replace
            ["cluster=ray", "cluster.measure_on={target_cpu: 1}"],
            "to replace it, write: '~cluster.measure_on' '+cluster.measure_on={target_cpu: 1}'",
        ),
        ("sweep.heartbeat_s=40", "the heartbeat must be positive and at most half the lease"),
        (
            "cluster.cpus_per_trial=4096",
            "cluster.cpus_per_trial=4096 is more than the",  # this machine's count of CPUs
        ),
        (
            "cluster.gpus_per_trial=1.5",
            "cluster.gpus_per_trial=1.5 must be 0, 1 or a fraction of one GPU",
        ),
        ("cluster.gpus_per_trial=-1", "cluster.gpus_per_trial=-1 must be 0, 1 or a fraction"),
        pytest.param(
            "cluster.gpus_per_trial=0.5",
            "cluster.gpus_per_trial=0.5: this machine has 0 CUDA GPU(s)",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
        (
            "space.recipe.prune.sparsity.high=1.5",
            "space.recipe.prune.sparsity (stage magnitude_prune): sparsity=1.5 is out of range",
        ),
        ("space.recipe.quantize.precision.choices=[fp32,int3]", "precision='int3' is not allowed"),
        ("task.epochs=many", "task.epochs='many' must be a whole number of at least 1"),
        ("task.eval_fraction=2.0", "task.eval_fraction=2.0 is out of range"),
        ("task=nope", "Could not find 'task/nope'"),
        ("plugins=[no_such_module]", "plugins: cannot import 'no_such_module'"),
        (
            "runtime=torch_cpu",
            "space.recipe.quantize.precision: runtime torch_cpu cannot run "
            "quantize(precision=int8_dynamic): no handler for Int8Plan(",
        ),
    ],
)
def test_wrong_config_is_refused_naming_the_key(override: str | list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(override if isinstance(override, list) else [override])
    assert message in str(error.value)


SHIPPED_SPACES = sorted(
    p.stem for p in (Path(__file__).parents[3] / "conf" / "space").glob("*.yaml")
)


# a space with an architecture slot fits only its family's task
SPACE_TASKS = {"minilm_nas": "minilm"}


@pytest.mark.parametrize("space", SHIPPED_SPACES)
def test_every_shipped_space_is_accepted_and_has_a_baseline(space: str) -> None:
    settings = load_settings([f"space={space}", f"task={SPACE_TASKS.get(space, 'digits_cnn')}"])
    assert settings.space.name == space
    assert settings.space.baseline is not None


def test_a_gpu_runtime_without_gpus_per_trial_is_refused_before_launch() -> None:
    expected = "runtime=torch_cuda runs on a GPU, and a trial has one only when it asks Ray"
    if not torch.cuda.is_available():
        expected = "runtime=torch_cuda cannot run here: torch_cuda needs a CUDA GPU"
    with pytest.raises(ConfigError, match=expected):
        load_settings(["space=distill", "runtime=torch_cuda"])
    # on a cluster, this machine's hardware says nothing: the GPU request is still needed
    with pytest.raises(ConfigError, match="set cluster.gpus_per_trial"):
        load_settings(["space=distill", "runtime=torch_cuda", "cluster.address=auto"])


def test_a_stage_after_a_quantizing_stage_is_refused_before_launch() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(
            [
                "space=gptq",
                "+space.recipe.share={stage: weight_share}",
            ]
        )
    assert str(error.value).startswith(
        "space.recipe.share: weight_share after gptq (slot quantize) is not supported"
    )


def test_a_quantizing_stage_the_runtime_cannot_run_is_refused_by_its_default() -> None:
    load_settings(["space=awq", "runtime=torch_cpu"])  # torch's CPU int4 kernel runs it
    with pytest.raises(ConfigError) as error:
        load_settings(["space=awq", "runtime=torch_cpu", "space.recipe.quantize.group_size=16"])
    assert str(error.value).startswith(
        "space.recipe.quantize.stage: runtime torch_cpu cannot run awq: WeightOnlyPlan(bits=3, "
        "group_size=16, symmetric=False, embeddings=False) is beyond its kernels: torch's CPU "
        "int4 kernel takes group_size in (32, 64, 128, 256)"
    )


def test_a_plan_type_a_runtime_lacks_is_refused_with_the_alternatives() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(
            ["runtime=ort_cpu", "space.recipe.quantize.precision.choices=[fp32,int8_weight]"]
        )
    assert str(error.value).endswith(
        "no handler for Int8WeightOnlyPlan(): it has handlers for HalfPlan, WeightOnlyPlan, "
        "Int8Plan only; ONNX Runtime has no per-channel int8 weight-only matmul: use "
        "int8_dynamic, or int4_weight, or runtime=torch_cpu"
    )


def test_only_plans_the_space_can_produce_are_checked() -> None:
    # int8 exists only under a precision the override removed; fp16 has a torch handler
    load_settings(["runtime=torch_cpu", "space.recipe.quantize.precision.choices=[fp32,fp16]"])
    with pytest.raises(ConfigError, match=r"quantize\(precision=int8_static\)"):
        load_settings(
            ["runtime=torch_cpu", "space.recipe.quantize.precision.choices=[fp32,int8_static]"]
        )


def test_checks_spanning_two_keys_see_the_slots_fixed_values() -> None:
    load_settings(["space=distill"])  # feature_weight > 0 is fine: features is fixed
    with pytest.raises(ConfigError, match="feature_weight > 0 needs features"):
        load_settings(["space=distill", "space.recipe.recover.features="])


def test_objectives_may_name_any_metric_a_trial_records() -> None:
    quality = ("accuracy", "top_2_accuracy")  # what the task's check found it scores
    for metric in ("top_2_accuracy", "latency_ms_p90", "zero_fraction", "saved_bytes/prune"):
        objectives = f"search.objectives=[{{metric: {metric}, direction: maximize}}]"
        check_objectives(load_settings([objectives]), quality)
    for objectives, message in [
        (
            "[{metric: speed, direction: minimize}]",
            "search.objectives[].metric='speed' is not allowed; choose one of 'quality', "
            "'accuracy', 'top_2_accuracy', 'size_bytes'",
        ),
        (
            "[{metric: quality, direction: maximize}, {metric: accuracy, direction: maximize}]",
            "search.objectives names a metric twice: ['accuracy', 'accuracy']",
        ),
    ]:
        settings = load_settings([f"search.objectives={objectives}"])
        with pytest.raises(ConfigError) as error:
            check_objectives(settings, quality)
        assert message in str(error.value)


def test_cluster_ray_joins_a_cluster_and_measures_on_its_target() -> None:
    settings = load_settings(["cluster=ray"])
    assert settings.cluster.address == "auto"
    assert settings.measure_options()["resources"] == {"target": 1}
    assert settings.cluster.compute_options()["resources"] == {}


def test_a_trial_on_a_chosen_runtime_is_paired_with_the_sweep_runtimes_baseline() -> None:
    """Latencies of both runtimes compare: each is a ratio to one baseline artifact (the
    sweep runtime's), on its latency settings."""
    settings = load_settings(["space=digits_nas", "runtime=ort_cpu"])
    spec = settings.worker_spec()
    on_torch = settings.trial_spec(spec, {"runtime": "torch_cpu"})
    assert on_torch.runtime.name == "torch_cpu"
    assert on_torch.paired_with == settings.runtime and on_torch.paired_with.name == "ort_cpu"
    assert settings.trial_spec(spec, {"runtime": "ort_cpu"}) == spec


def test_a_runtime_choice_carries_its_own_settings_into_its_trials() -> None:
    """`openvino_cpu:static` is OpenVINO with the space's settings for that label: its
    trials export and run with them, and are still paired with the sweep runtime."""
    settings = load_settings(["space=digits_nas"])
    spec = settings.worker_spec()
    static = settings.trial_spec(spec, {"runtime": "openvino_cpu:static"})
    assert static.runtime.name == "openvino_cpu" and static.runtime.shape == "static"
    dynamic = settings.trial_spec(spec, {"runtime": "openvino_cpu"})
    assert dynamic.runtime.shape == "dynamic"
    assert static.paired_with == settings.runtime
    compiled = load_settings(
        ["space=digits_nas", "+space.runtime.settings.torch_cpu={mode: compile}"]
    )
    assert compiled.trial_spec(spec, {"runtime": "torch_cpu"}).runtime.mode == "compile"
    nested = load_settings(
        ["space=digits_nas", "+space.runtime.settings.openvino_cpu={latency: {repeats: 7}}"]
    )
    assert nested.runtimes["openvino_cpu"].latency.repeats == 7
    # a label without settings is the runtime as its config group composes it
    bare = load_settings(["space=digits_nas", "space.runtime.choices=[ort_cpu,openvino_cpu:x]"])
    assert bare.runtimes["openvino_cpu:x"].shape == "dynamic"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+space.runtime.settings.openvino_cpu={shape: wobbly}",
            "space.runtime.choices: openvino_cpu: runtime.shape='wobbly' is not allowed",
        ),
        (
            "+space.runtime.settings.ort_cpu={exporter: dynamo}",
            "ort_cpu is the sweep's runtime (runtime=), whose keys are runtime.* overrides",
        ),
        (
            "+space.runtime.settings.openvino_cpu={name: ort_cpu}",
            "space.runtime.settings.openvino_cpu.name: a choice's runtime is its label's",
        ),
        (
            ["~space.runtime.settings", "+space.runtime.settings=[shape]"],
            "space.runtime.settings must map a choice to its runtime keys",
        ),
        (
            "+space.runtime.settings.tensorrt={mode: compile}",
            "space.runtime.settings: ['tensorrt'] names no registered runtime",
        ),
    ],
)
def test_wrong_runtime_settings_are_refused_naming_the_key(
    override: str | list[str], message: str
) -> None:
    overrides = override if isinstance(override, list) else [override]
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(["space=digits_nas", *overrides])
