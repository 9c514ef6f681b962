"""The ``allocator batch`` and ``allocator size`` commands: thin layers over
:func:`allocator.batching.run_batch` and :func:`allocator.sizing_curve.sizing_curve`.

Exit codes: 0 every scenario has its run (``size``: the curve has a best point), 1 some scenarios
failed (the summary names them) or an engine error, 2 bad input (a sweep key, a value, a file).
"""

from __future__ import annotations

import json
import logging

import click

from allocator.exceptions import AllocatorError


def _common_options(func):
    options = [
        click.option("--jobs", type=int, default=None,
                     help="Local process pool of N workers (default: the cores available)."),
        click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                     help="Run on an existing Dask cluster (extra: territory-allocator[dask])."),
        click.option("--dask-local", type=int, default=None, metavar="N",
                     help="Start a Dask cluster of N single-threaded workers on this machine."),
        click.option("--resume", is_flag=True,
                     help="Skip scenarios that already have a complete run with the same "
                          "scenario hash under --models-dir."),
        click.option("--solver", type=click.Choice(["cpsat", "highs", "cbc"]), default=None,
                     help="Integer programming solver (default: each scenario's)."),
        click.option("--time-limit", type=float, default=None,
                     help="Seconds of wall time per scenario."),
        click.option("--gap", type=float, default=None, help="Stop at this relative gap."),
        click.option("--seed", type=int, default=None, help="Random seed."),
        click.option("--threads", type=int, default=None, help="Solver threads per scenario."),
        click.option("--models-dir", type=click.Path(file_okay=False), default="models",
                     show_default=True, help="Folder that receives run folders."),
        click.option("--reports-dir", type=click.Path(file_okay=False), default="reports",
                     show_default=True, help="Folder that receives the output folder."),
        click.option("--out", type=click.Path(file_okay=False), default=None,
                     help="Output folder (default: under --reports-dir, named by a hash of the "
                          "jobs, so that a resumed batch writes to the same place)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print a machine-readable summary to stdout."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
        click.option("--debug", is_flag=True, help="Show the traceback of an error."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _solver_options(options: dict) -> dict:
    if options.get("scheduler") or options.get("dask_local"):
        # Dask logs every worker connection at INFO; the progress bar says what matters
        logging.getLogger("distributed").setLevel(logging.WARNING)
    return {key: options.pop(key) for key in ("solver", "time_limit", "gap", "seed", "threads")}


@click.command()
@click.argument("scenarios", nargs=-1, required=True)
@click.option("--sweep", "sweeps", multiple=True, metavar="KEY=V1,V2,...",
              help="Solve every value of a setting, e.g. strategy.budget=20e6,25e6 or "
                   "alignment.tolerance=0.05,0.10 (alignment.balance[0].tolerance); several "
                   "--sweep options give every combination.")
@_common_options
def batch(scenarios, sweeps, as_json, quiet, debug, **options) -> None:
    """Solve SCENARIOS (files or quoted globs such as 'scenarios/*.yaml'), each with every
    combination of the --sweep values, and write comparison.csv and comparison.html.

    A scenario that fails is recorded with its error and the others go on; the command then
    exits 1 and names the failures.
    """
    from allocator.batching import run_batch
    from allocator.cli import _fail, _stdout_to_stderr

    solver = _solver_options(options)
    try:
        # solver libraries in the workers print banners on stdout; keep stdout for the JSON
        with _stdout_to_stderr(as_json):
            outcome = run_batch(list(scenarios), sweep=list(sweeps),
                                show_progress=not quiet, **options, **solver)
    except AllocatorError as err:
        _fail(err, debug)
    summary = outcome.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(f"{summary['scenarios']} scenarios on {summary['executor']}: "
                   f"{summary['solved']} solved, {summary['resumed']} resumed, "
                   f"{summary['failed']} failed, {summary['wall_s']:.1f} s")
        click.echo(f"comparison: {summary['comparison_csv']}, {summary['comparison_html']}")
    if not outcome.ok:
        click.echo(f"{len(outcome.failed)} of {summary['scenarios']} scenarios failed:", err=True)
        for error in summary["errors"]:
            click.echo(f"  - {error['label']}: {error['error']}", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--headcount", "headcounts", default=None, metavar="FIRST:LAST:STEP",
              help="Head counts to plan, e.g. 40:120:5 (last included) or 40,60,80 "
                   "(default: the scenario's strategy.headcount range in about 15 steps).")
@_common_options
def size(scenario, headcounts, as_json, quiet, debug, **options) -> None:
    """Plan SCENARIO at each head count and draw the sizing curve (sizing.html, sizing.png).

    Expected sales, cost and contribution against head count, with the budget line and the best
    point: the head count of highest objective, which `allocator solve` also picks. A head count
    without a plan (over budget, no balanced plan in time) is a point of the curve; an engine
    error at a point makes the command exit 1.
    """
    from allocator.cli import _fail, _stdout_to_stderr
    from allocator.sizing_curve import sizing_curve

    solver = _solver_options(options)
    try:
        with _stdout_to_stderr(as_json):
            curve = sizing_curve(scenario, headcounts, show_progress=not quiet, **options,
                                 **solver)
    except AllocatorError as err:
        _fail(err, debug)
    summary = curve.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(f"{summary['points']} head counts: {summary['with_plan']} with a plan, "
                   f"{summary['no_plan']} without, {summary['failed']} failed "
                   f"({summary['wall_s']:.1f} s on {summary['executor']})")
        if curve.best is not None:
            best = summary["best"]
            click.echo(f"best head count {curve.best}: expected sales "
                       f"{best['expected_sales']:,.0f}, cost {best['cost']:,.0f}, contribution "
                       f"{best['contribution']:,.0f}")
        click.echo(f"chart: {summary['html']}, {summary['png']}")
    if len(curve.failed):
        click.echo(f"{len(curve.failed)} head counts failed:", err=True)
        for row in curve.failed.itertuples():
            click.echo(f"  - N={row.headcount}: {row.error}", err=True)
        raise SystemExit(1)
    if curve.best is None:
        click.echo("error: no head count of the curve has a plan", err=True)
        raise SystemExit(3)
