"""`slimsweep`: run a sweep, show its front. Imports nothing heavy until a command runs."""

import argparse
import sys
from pathlib import Path

from slimsweep.sweeps.errors import ConfigError, SweepError

EXAMPLES = """examples:
  slimsweep run                                      the demo sweep (digits CNN)
  slimsweep run search.n_trials=12 search.parallelism=2
  slimsweep run sweep.name=nightly space.recipe.prune.sparsity.high=0.8
  slimsweep run --show-config                        print the composed config and exit
  slimsweep space combined                           a search space as a tree, its size
  slimsweep pareto                                   the front of the last sweep
  slimsweep pareto nightly --sort size_bytes --json  a named sweep's front, for scripts
  slimsweep pick nightly --max-latency-ms 2 --min-accuracy 0.97 [--knee]
  slimsweep export nightly 13 --to deploy/           artifact, recipe, config, model card
  slimsweep register nightly 13 --alias champion     into the MLflow Model Registry
  slimsweep report nightly                           one self-contained HTML page
  slimsweep remeasure nightly                        the quiet phase now (e.g. after Ctrl-C)
  slimsweep ui                                       MLflow UI (and optuna-dashboard) on 127.0.0.1
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slimsweep",
        description="Find the best compressed versions of a neural network.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) a sweep; Hydra overrides follow")
    run.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search.n_trials=12")
    run.add_argument("--show-config", action="store_true", help="print the config and exit")
    run.add_argument(
        "--quiet", action="store_true", help="print only failures and the final front (CI logs)"
    )
    space = commands.add_parser(
        "space", help="show a search space as a tree: conditions, distinct recipes, baseline"
    )
    space.add_argument("space", nargs="?", help="a space in conf/space (default: the config's)")
    space.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. runtime=torch_cpu")
    pareto = _reader(
        commands, "pareto", "print the Pareto front of a sweep", sweep="optional", feasible=True
    )
    pareto.add_argument("--sort", metavar="OBJECTIVE", help="best first by this objective")
    pareto.add_argument("--json", action="store_true", help="machine-readable output")
    pick = _reader(
        commands, "pick", "choose one model off the front, within bounds; say why", feasible=True
    )
    pick.add_argument(
        "--min", action="append", default=[], metavar="METRIC=VALUE", help="a lower bound"
    )
    pick.add_argument(
        "--max", action="append", default=[], metavar="METRIC=VALUE", help="an upper bound"
    )
    pick.add_argument("--min-accuracy", type=float, help="shorthand for --min accuracy=VALUE")
    pick.add_argument("--max-latency-ms", type=float, help="--max latency_ms_median=VALUE")
    pick.add_argument("--max-size-kib", type=float, help="--max size_bytes=VALUE*1024")
    pick.add_argument("--knee", action="store_true", help="the front's knee, not the best first")
    pick.add_argument("--json", action="store_true", help="machine-readable output")
    export = _reader(
        commands, "export", "write a trial's artifact, recipe, config, model card", trial=True
    )
    export.add_argument("--to", required=True, type=Path, help="a new or empty folder")
    register = _reader(
        commands, "register", "put a trial's artifact in the MLflow Model Registry", trial=True
    )
    register.add_argument("--name", help="registered model name (default: the sweep's)")
    register.add_argument("--alias", default="champion", help="alias to point at the version")
    report = _reader(commands, "report", "write a one-page HTML report of a sweep", feasible=True)
    report.add_argument(
        "--to", type=Path, help="HTML file (default: SWEEP-report.html in sweep.dir)"
    )
    remeasure = _reader(
        commands, "remeasure", "re-measure a sweep's front alone and interleaved, re-tag it"
    )
    remeasure.add_argument(
        "--rounds", type=int, help="interleaved rounds (default: the sweep's quiet_rounds, or 5)"
    )
    ui = _reader(
        commands, "ui", "serve the sweeps' MLflow store (and Optuna's) on 127.0.0.1", sweep=None
    )
    ui.add_argument("--port", type=int, default=5000, help="MLflow UI port (dashboard: +1)")
    return parser


def _reader(
    commands: argparse._SubParsersAction,
    name: str,
    description: str,
    *,
    sweep: str | None = "required",
    trial: bool = False,
    feasible: bool = False,
) -> argparse.ArgumentParser:
    """A command that reads a sweep's stores: SWEEP [TRIAL] [overrides locating the stores]."""
    command = commands.add_parser(name, help=description)
    if feasible:
        command.add_argument(
            "--feasible",
            action="store_true",
            help="the front of the models that keep the sweep's search.constraints",
        )
    if sweep == "optional":
        command.add_argument("sweep", nargs="?", help="sweep name (default: the last one run)")
    elif sweep == "required":
        command.add_argument("sweep", help="sweep name")
    if trial:
        command.add_argument("trial", type=int, help="trial number")
    command.add_argument("overrides", nargs="*", help="overrides locating the stores (sweep.dir=X)")
    return command


def _run(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.config import check_objectives, compose, load_settings

    if args.show_config:
        import yaml

        print(yaml.safe_dump(compose(args.overrides), sort_keys=False), end="")
        return
    settings = load_settings(args.overrides)
    from slimsweep.sweeps.task_check import check_task

    say = (lambda _: None) if args.quiet else print
    # a wrong task is refused here, before any trial runs
    checked = check_task(settings.task, Path(settings.sweep.cache_dir).resolve(), say)
    check_objectives(settings, checked.quality_metrics)
    from slimsweep.sweeps.engine.driver import run_sweep
    from slimsweep.sweeps.progress import LineProgress, LiveProgress
    from slimsweep.sweeps.readers.pareto import format_front
    from slimsweep.sweeps.results.rows import read_results

    live = not args.quiet and sys.stdout.isatty()
    progress = LiveProgress() if live else LineProgress(quiet=args.quiet)
    try:
        study = run_sweep(settings, progress)
    finally:
        progress.close()
    print()
    print(format_front(read_results(study)))


def _space(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.config import load_settings
    from slimsweep.sweeps.engine.warm_start import first_tries
    from slimsweep.sweeps.readers.space_tree import describe_space

    if args.space and "=" in args.space:
        args.overrides.insert(0, args.space)
        args.space = None
    settings = load_settings([f"space={args.space}"] * bool(args.space) + args.overrides)
    first = first_tries(settings.space) if settings.search.first_tries else []
    print(describe_space(settings.space, settings.runtime.name, first))


def _config(args: argparse.Namespace) -> dict:
    """The composed config of this command's overrides, composed once per command."""
    from slimsweep.sweeps.config import compose

    if not hasattr(args, "config"):
        args.config = compose(args.overrides)
    return args.config


def _results_of(args: argparse.Namespace):
    """The results of the sweep named (or the last one run) in the stores the overrides
    locate; reading never creates a store, and a sweep without a completed trial is an error."""
    from pathlib import Path

    from slimsweep.sweeps.engine.study import open_existing
    from slimsweep.sweeps.results.rows import read_results

    if args.sweep and "=" in args.sweep:
        args.overrides.insert(0, args.sweep)
        args.sweep = None
    storage = _config(args)["sweep"]["storage"]
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).exists():
        raise SweepError(f"no sweeps yet: {storage} does not exist; run `slimsweep run` first")
    results = read_results(open_existing(storage, args.sweep))
    if not results.front:
        raise SweepError(f"sweep {results.name!r} has no completed trials yet")
    if getattr(args, "feasible", False):
        if not results.constraints:
            raise SweepError(f"--feasible: sweep {results.name!r} ran without search.constraints")
        if not results.feasible_front:
            raise SweepError(
                f"--feasible: no model of sweep {results.name!r} keeps its constraints "
                f"({'; '.join(results.constraints)})"
            )
        results = results.feasible_only()
    return results


def _pareto(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.readers.pareto import format_front, front_json

    results = _results_of(args)
    rows = results.front
    if args.sort:
        if args.sort not in results.objectives:
            allowed = ", ".join(results.objectives)
            raise SweepError(f"--sort {args.sort!r} is not an objective here; use one of {allowed}")
        rows = results.sorted_by(rows, args.sort)
    if args.json:
        print(front_json(results, rows))
        return
    print(format_front(results, rows))
    experiment = _store(args).sweep_experiments().get(results.name)
    if experiment is not None:
        from slimsweep.sweeps.readers.links import link_lines

        print("\nin MLflow (served by `slimsweep ui`):", *link_lines(experiment), sep="\n")


def _bounds(args: argparse.Namespace) -> list:
    from slimsweep.sweeps.readers.choose import Bound

    bounds = []
    for upper, specs in ((False, args.min), (True, args.max)):
        for spec in specs:
            metric, _, value = spec.partition("=")
            try:
                bounds.append(Bound(metric, float(value), upper))
            except ValueError:
                flag = "--max" if upper else "--min"
                raise SweepError(f"{flag} {spec!r}: expected METRIC=NUMBER") from None
    if args.min_accuracy is not None:
        bounds.append(Bound("accuracy", args.min_accuracy, upper=False))
    if args.max_latency_ms is not None:
        bounds.append(Bound("latency_ms_median", args.max_latency_ms, upper=True))
    if args.max_size_kib is not None:
        bounds.append(Bound("size_bytes", args.max_size_kib * 1024, upper=True))
    return bounds


def _pick(args: argparse.Namespace) -> None:
    import json
    from dataclasses import asdict

    from slimsweep.sweeps.readers.choose import choose
    from slimsweep.sweeps.readers.pareto import format_front

    results = _results_of(args)
    choice = choose(results, _bounds(args), args.knee)
    if args.json:
        print(json.dumps({**asdict(choice.row), "reason": choice.reason}, indent=2))
        return
    print(format_front(results, [choice.row], title=f"Picked from sweep {results.name!r}:"))
    print(f"\nwhy: {choice.reason}")


def _store(args: argparse.Namespace):
    from slimsweep.sweeps.results.tracking import TrackingStore

    return TrackingStore(_config(args)["tracking"]["uri"])


def _export(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.readers.export import export_trial

    for path in export_trial(_results_of(args), args.trial, _store(args), args.to):
        print(path)


def _register(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.readers.export import verified_artifact

    results = _results_of(args)
    row = results.completed(args.trial)
    store = _store(args)
    _, sha256 = verified_artifact(row, store)
    model = args.name or results.name
    version = store.register(row.run_id, row.artifact, model, args.alias)
    print(f"registered {model!r} version {version} (alias {args.alias!r}): trial {row.trial}")
    print(f"sha256 {sha256}")


def _report(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.readers.report import report_html

    results = _results_of(args)
    target = args.to or Path(_config(args)["sweep"]["dir"]) / f"{results.name}-report.html"
    if not target.parent.is_dir():
        raise SweepError(f"--to {target}: folder {target.parent} does not exist")
    try:
        target.write_text(report_html(results, _store(args).sweep_config(results.name)))
    except OSError as error:
        raise SweepError(f"--to {target} cannot be written ({error.strerror or error})") from None
    print(target)


def _remeasure(args: argparse.Namespace) -> None:
    """The quiet phase of a sweep, run now, with the config the sweep ran with; the stores
    are those the overrides locate."""
    import dataclasses

    import yaml

    from slimsweep.sweeps.config import settings_from
    from slimsweep.sweeps.engine.driver import remeasure_sweep
    from slimsweep.sweeps.progress import LineProgress
    from slimsweep.sweeps.readers.pareto import format_front
    from slimsweep.sweeps.results.rows import read_results

    results = _results_of(args)
    logged = _store(args).sweep_config(results.name)
    if logged is None:
        raise SweepError(f"sweep {results.name!r} has no config in MLflow to re-measure with")
    resolved = yaml.safe_load(logged)
    here = _config(args)
    for key in ("dir", "storage", "cache_dir"):
        resolved["sweep"][key] = here["sweep"][key]
    resolved["tracking"] = here["tracking"]
    settings = settings_from(resolved)
    latency = settings.runtime.latency
    if args.rounds is not None and args.rounds < 1:
        raise SweepError(f"--rounds {args.rounds} must be at least 1")
    rounds = args.rounds or latency.quiet_rounds or 5
    runtime = dataclasses.replace(
        settings.runtime, latency=dataclasses.replace(latency, quiet_rounds=rounds)
    )
    study = remeasure_sweep(dataclasses.replace(settings, runtime=runtime), LineProgress())
    print(format_front(read_results(study)))


def _ui(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.readers.ui import serve

    config = _config(args)
    log = Path(config["sweep"]["dir"]) / "ui.log"
    serve(config["tracking"]["uri"], config["sweep"]["storage"], args.port, log)


COMMANDS = {
    "run": _run,
    "space": _space,
    "pareto": _pareto,
    "pick": _pick,
    "export": _export,
    "register": _register,
    "report": _report,
    "remeasure": _remeasure,
    "ui": _ui,
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    # Overrides may follow options (`pick nightly --knee sweep.dir=X`): argparse leaves such
    # late KEY=VALUE words over, and they join the overrides.
    args, extra = parser.parse_known_args(argv)
    late = [word for word in extra if "=" in word and not word.startswith("-")]
    if len(late) != len(extra):
        parser.error(f"unrecognized arguments: {' '.join(w for w in extra if w not in late)}")
    args.overrides = [*args.overrides, *late]
    try:
        COMMANDS[args.command](args)
    except (ConfigError, SweepError) as error:
        print(f"slimsweep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = "; run the same command again to resume" if args.command == "run" else ""
        print(f"slimsweep: interrupted{resume}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
