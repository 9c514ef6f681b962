"""The ``allocator`` command: a thin layer over the Python API.

Exit codes: 0 success, 1 engine error, 2 bad input, 3 infeasible scenario or no plan in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings

import click

from allocator.exceptions import AllocatorError, AllocatorWarning

DEFAULT_SCENARIO = "scenarios/us_counties.yaml"


@contextlib.contextmanager
def _stdout_to_stderr(active: bool):
    """Send file descriptor 1 to 2 meanwhile (C libraries write to it directly)."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _fail(err: AllocatorError, debug: bool) -> None:
    if debug:
        raise err
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="territory-allocator")
def main() -> None:
    """Plan a sales organisation: size, territories and quotas, by optimisation."""
    warnings.simplefilter("default", AllocatorWarning)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def validate(scenario: str, as_json: bool, debug: bool) -> None:
    """Load SCENARIO and check every table and setting, without solving."""
    from allocator.scenario import load_scenario

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AllocatorWarning)
            loaded = load_scenario(scenario)
    except AllocatorError as err:
        _fail(err, debug)
    summary = {
        "scenario": loaded.name,
        "units": loaded.n_units,
        "adjacency_edges": int(len(loaded.edges)),
        "islands_joined": len(loaded.islands),
        "existing_reps": len(loaded.reps),
        "sites": len(loaded.sites),
        "hire_places": int(loaded.sites["max_hires"].sum()),
        "sha256": loaded.sha256,
        "warnings": [str(w.message) for w in caught],
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for w in summary["warnings"]:
            click.echo(f"warning: {w}", err=True)
        click.echo(f"{scenario}: valid ({summary['units']} units, {summary['adjacency_edges']} "
                   f"adjacencies, {summary['existing_reps']} reps, {summary['sites']} sites)")


def _solve_options(func):
    options = [
        click.option("--solver", type=click.Choice(["cpsat", "highs", "cbc"]), default=None,
                     help="Integer programming solver (default: the scenario's)."),
        click.option("--time-limit", type=float, default=None, help="Seconds of wall time."),
        click.option("--gap", type=float, default=None, help="Stop at this relative gap."),
        click.option("--seed", type=int, default=None, help="Random seed."),
        click.option("--threads", type=int, default=None, help="Solver threads."),
        click.option("--models-dir", type=click.Path(file_okay=False), default="models",
                     show_default=True, help="Folder that receives run folders."),
        click.option("--json", "as_json", is_flag=True, help="Print result.json to stdout."),
        click.option("--quiet", is_flag=True, help="No progress messages."),
        click.option("--debug", is_flag=True, help="Show the traceback of an error."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run(scenario_path: str, solver, time_limit, gap, seed, threads, models_dir, as_json, quiet,
         debug) -> None:
    from allocator.api import solve_and_write

    def progress(message: str) -> None:
        if not quiet and not as_json:
            click.echo(message, err=True)

    try:
        # solver libraries print banners on the process's stdout; keep stdout for the JSON
        with _stdout_to_stderr(as_json):
            folder, record = solve_and_write(scenario_path, models_dir=models_dir, solver=solver,
                                             time_limit=time_limit, gap=gap, seed=seed,
                                             threads=threads, progress=progress)
    except AllocatorError as err:
        _fail(err, debug)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    k = record["kpis"]
    click.echo(f"run: {folder}")
    click.echo(f"status {record['status']} ({record['termination']}), objective "
               f"{record['objective']:,.0f}, bound {record['bound']:,.0f}, gap {record['gap']:.3%}, "
               f"{record['runtime_s']:.1f} s, solver {record['solver']}")
    click.echo(f"head count {k['headcount']} ({k['kept']} kept, {k['hires']} hires, "
               f"{k['released']} released, {k['managers']} managers) in {k['territories']} "
               f"territories; expected sales {k['expected_sales']:,.0f}; cost {k['cost']:,.0f} "
               f"({k['budget_used']:.1%} of budget)")
    click.echo(f"workload per rep {k['workload_index_min']:.3f}-{k['workload_index_max']:.3f} x mean "
               f"(tolerance ±{k['balance_tolerance']:.0%}); {record['binding']}")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@_solve_options
def solve(scenario, **options) -> None:
    """Optimise SCENARIO and write a run folder under --models-dir."""
    _run(scenario, **options)


@main.command()
@click.option("--scenario", default=DEFAULT_SCENARIO, show_default=True,
              type=click.Path(dir_okay=False), help="The embedded default scenario.")
@_solve_options
def demo(scenario, **options) -> None:
    """Solve the embedded default scenario (3,108 US counties plus DC)."""
    _run(scenario, **options)


_REPORTS_DIR = click.option("--reports-dir", type=click.Path(file_okay=False), default="reports",
                            show_default=True,
                            help="Reports go to REPORTS_DIR/<scenario>/<run-id>/.")


@main.command("simulate-actuals")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--through", default=None, metavar="YYYY-MM",
              help="Last month to simulate (default: June of the plan year).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="CSV to write (default: the run's report folder, actuals_synthetic.csv).")
@_REPORTS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def simulate_actuals(run, through, seed, out, reports_dir, as_json, debug) -> None:
    """Write seeded SYNTHETIC monthly actuals by unit for the run folder RUN."""
    from pathlib import Path

    from allocator.actuals import simulate_actuals as simulate
    from allocator.actuals import write_table_atomic
    from allocator.report import report_folder
    from allocator.runs import read_run

    try:
        record = read_run(run)
        table = simulate(record, through=through, seed=seed)
        path = Path(out) if out else report_folder(record, reports_dir) / "actuals_synthetic.csv"
        write_table_atomic(table, path)
    except AllocatorError as err:
        _fail(err, debug)
    summary = {"actuals": str(path), "rows": len(table), "units": int(table["unit_id"].nunique()),
               "months": sorted(table["month"].unique().tolist()), "seed": seed,
               "sales": round(float(table["sales"].sum()), 2), "synthetic": True}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"synthetic actuals: {path} ({summary['rows']} rows, {summary['units']} units, "
                   f"{summary['months'][0]}..{summary['months'][-1]}, sales "
                   f"{summary['sales']:,.0f}, seed {seed})")


@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@_REPORTS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the written files as JSON.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def report(run, reports_dir, as_json, debug) -> None:
    """Write report.html, map.html, map.png and plan.xlsx for the run folder RUN."""
    from allocator.report import write_report

    try:
        written = write_report(run, reports_dir=reports_dir)
    except AllocatorError as err:
        _fail(err, debug)
    if as_json:
        click.echo(json.dumps({"folder": str(written.folder),
                               "files": {k: str(v) for k, v in written.files.items()}}, indent=2))
    else:
        click.echo(f"report: {written.folder / 'report.html'}")
        for name, path in written.files.items():
            click.echo(f"  {name}: {path.stat().st_size / 1e6:.2f} MB")


@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("actuals", type=click.Path(dir_okay=False))
@click.option("--low", type=float, default=0.85, show_default=True,
              help="Flag reps below this share of their quota to date.")
@click.option("--high", type=float, default=1.20, show_default=True,
              help="Flag reps above this share of their quota to date.")
@_REPORTS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the headline figures as JSON.")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
def evaluate(run, actuals, low, high, reports_dir, as_json, debug) -> None:
    """Evaluate the run folder RUN against ACTUALS (sales by unit or rep and month)."""
    from allocator.evaluate import Thresholds, summary_json, write_evaluation

    try:
        result, files = write_evaluation(run, actuals, reports_dir=reports_dir,
                                         thresholds=Thresholds(low=low, high=high))
    except AllocatorError as err:
        _fail(err, debug)
    if as_json:
        click.echo(summary_json(result))
        return
    s = result.summary
    click.echo(f"evaluation: {files['evaluation.html']}")
    click.echo(f"through {s['through']}: attainment {s['attainment']:.1%} of quota to date, "
               f"projection {s['projection']:,.0f} of {s['annual_quota']:,.0f}; "
               f"{s['share_at_or_above_quota']:.0%} of reps at or above quota; "
               f"{s['flagged_below']} flagged below, {s['flagged_above']} above; "
               f"MAPE {s['mape']:.1%}, bias {s['bias']:+.1%}")
    click.echo(f"recalibrated response: {files['response_recalibrated.yaml']}")


# batch and size live in their own module (many options, one shared set)
def _add_batch_commands() -> None:
    from allocator.cli_batch import batch, size

    main.add_command(batch)
    main.add_command(size)


_add_batch_commands()

@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.argument("actuals", type=click.Path(dir_okay=False))
@click.option("--as-of", "as_of", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Date of the re-optimisation (YYYY-MM-DD); months complete by then are done.")
@click.option("--max-moved", default=None, metavar="[units:|value:]SHARE",
              help="Most that may change owner: 5% (of units), units:5%, value:5% (of last "
                   "year's sales).")
@click.option("--disruption-weight", type=float, default=None,
              help="Price of a move per unit of last year's sales moved; without it the plan "
                   "moves as little as balance needs.")
@click.option("--people", type=click.Path(dir_okay=False), default=None,
              help="YAML of departures, vacancies and hires.")
@click.option("--locks", type=click.Path(dir_okay=False), default=None,
              help="Table of unit_id / territory_id that must not change.")
@click.option("--recalibrated", type=click.Path(dir_okay=False), default=None,
              help="Updated potential: a unit_id,potential table or a JSON/YAML of factors.")
@click.option("--tradeoff", type=int, default=None, metavar="N",
              help="Also sweep N disruption caps: objective against disruption (table, chart).")
@_solve_options
def reoptimize(run, actuals, as_of, max_moved, disruption_weight, people, locks, recalibrated,
               tradeoff, solver, time_limit, gap, seed, threads, models_dir, as_json, quiet,
               debug) -> None:
    """Re-optimise the run folder RUN mid-year from ACTUALS, moving few units."""
    from allocator.disruption import DisruptionLimit, read_locks, read_people_changes
    from allocator.reoptimize import reoptimize as run_reoptimize
    from allocator.reoptimize import write_reoptimized_run

    def progress(message: str) -> None:
        if not quiet and not as_json:
            click.echo(message, err=True)

    try:
        with _stdout_to_stderr(as_json):
            limit = DisruptionLimit.parse(max_moved) if max_moved is not None else None
            result = run_reoptimize(
                run, actuals, as_of.date(), people=read_people_changes(people) if people else None,
                locks=read_locks(locks) if locks else None, max_moved=limit,
                disruption_weight=disruption_weight, tradeoff=tradeoff, recalibrated=recalibrated,
                solver=solver, time_limit=time_limit, seed=seed, threads=threads,
                progress=progress)
            folder = write_reoptimized_run(result, models_dir, people, locks)
    except AllocatorError as err:
        _fail(err, debug)
    record = json.loads((folder / "result.json").read_text())
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    d, q = record["disruption"], record["quotas"]
    click.echo(f"run: {folder} (parent {record['parent_run_id']})")
    click.echo(f"moved {d['units_moved']} unit(s) ({d['units_moved_share']:.2%} of units; "
               f"{d['forced_units']} because their rep left or a base was added), last year's "
               f"sales moved {d['value_moved']:,.0f} ({d['value_moved_share']:.2%}), "
               f"{d['reps_affected']} rep(s) affected" + (
                   f"; cap {d['cap']['measure']} {d['cap']['share']:.2%}" if d["cap"] else ""))
    if d.get("extra_moves_lower_bound") is not None:
        click.echo(f"{d['extra_moves']} move(s) beyond the forced ones; no plan of whole border "
                   f"units needs fewer than {d['extra_moves_lower_bound']} (transfer plan bound)")
    parent = record.get("parent_objective")
    click.echo(f"objective {record['objective']:,.0f}" + (
        f" (parent plan {parent:,.0f})" if parent is not None else "")
        + f", {record['runtime_s']:.1f} s, solver {record['solver']}")
    click.echo(f"quotas for {q['months_left'][0]}..{q['months_left'][-1]}: "
               f"{q['remaining_quota_total']:,.2f} = annual {q['annual_quota_total']:,.2f} less "
               f"sold {q['sold_to_date']:,.2f}" if q["months_left"] else "no months left")
    if record.get("tradeoff"):
        click.echo("trade-off (cap, units moved, value moved, objective):")
        for row in record["tradeoff"]:
            click.echo(f"  {row['point']}: {row['cap']:,.0f}  {row['units_moved']}  "
                       f"{row['value_moved']:,.0f}  {row['objective']:,.0f}")


if __name__ == "__main__":  # pragma: no cover
    main()
