"""`slimsweep`: run a sweep, show its front. Imports nothing heavy until a command runs."""

import argparse
import sys

from slimsweep.sweeps.errors import ConfigError, SweepError

EXAMPLES = """examples:
  slimsweep run                                      the demo sweep (digits CNN)
  slimsweep run search.n_trials=12 search.parallelism=2
  slimsweep run sweep.name=nightly space.recipe.prune.sparsity.high=0.8
  slimsweep run --show-config                        print the composed config and exit
  slimsweep pareto                                   the front of the last sweep
  slimsweep pareto nightly                           the front of a named sweep
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
    pareto = commands.add_parser("pareto", help="print the Pareto front of a sweep")
    pareto.add_argument("sweep", nargs="?", help="sweep name (default: the last one run)")
    pareto.add_argument("--sort", metavar="OBJECTIVE", help="best first by this objective")
    pareto.add_argument("--json", action="store_true", help="machine-readable output")
    pareto.add_argument(
        "overrides", nargs="*", help="overrides locating the stores, e.g. sweep.dir=X"
    )
    return parser


def _run(args: argparse.Namespace) -> None:
    from slimsweep.sweeps.config import compose, load_settings

    if args.show_config:
        import yaml

        print(yaml.safe_dump(compose(args.overrides), sort_keys=False), end="")
        return
    settings = load_settings(args.overrides)
    from slimsweep.sweeps.driver import run_sweep
    from slimsweep.sweeps.pareto import format_front

    study = run_sweep(settings)
    print()
    print(format_front(study))


def _pareto(args: argparse.Namespace) -> None:
    from pathlib import Path

    from slimsweep.sweeps.config import compose

    if args.sweep and "=" in args.sweep:
        args.overrides.insert(0, args.sweep)
        args.sweep = None
    storage = compose(args.overrides)["sweep"]["storage"]
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).exists():
        raise SweepError(f"no sweeps yet: {storage} does not exist; run `slimsweep run` first")
    from slimsweep.sweeps.pareto import format_front, front, front_json, objectives, sort_rows
    from slimsweep.sweeps.study import open_existing

    study = open_existing(storage, args.sweep)
    rows = front(study)
    if not rows:
        raise SweepError(f"sweep {study.study_name!r} has no completed trials yet")
    if args.sort:
        if args.sort not in objectives(study):
            allowed = ", ".join(objectives(study))
            raise SweepError(f"--sort {args.sort!r} is not an objective here; use one of {allowed}")
        rows = sort_rows(rows, study, args.sort)
    print(front_json(study, rows) if args.json else format_front(study, rows))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        {"run": _run, "pareto": _pareto}[args.command](args)
    except (ConfigError, SweepError) as error:
        print(f"slimsweep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("slimsweep: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
