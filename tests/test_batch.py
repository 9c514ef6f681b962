"""``allocator batch``: sweeps, the process pool and Dask, failures, resume, a killed batch."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import allocator
from allocator.batching import RUN_IDENTITY_COLUMNS, parse_setting_path
from allocator.cli import main
from allocator.exceptions import InputError, PlanCheckError
from allocator.runs import read_run
from conftest import write_csv, write_scenario

BUDGETS = [300_000, 400_000, 500_000]
SWEEP = "strategy.budget=" + ",".join(str(b) for b in BUDGETS)
ALLOCATOR = Path(sys.executable).parent / "allocator"


def run(*args) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory) -> dict[str, Path]:
    """Two small valid scenarios and one whose units table lacks its workload column."""
    root = tmp_path_factory.mktemp("batch")
    good_a = write_scenario(root / "a", name="alpha")
    good_b = write_scenario(root / "b", rows=3, cols=3, name="beta",
                            sites=[("U3", 2), ("U7", 1), ("U9", 1)],
                            settings={"strategy": {"headcount": {"min": 1, "max": 4}}})
    broken = write_scenario(root / "c", name="gamma")
    write_csv(broken.parent / "units.csv", ["unit_id", "name", "x", "y", "potential",
                                            "last_year_sales"],
              [[f"U{k}", f"Unit {k}", 10.0 * k, 0.0, 1e6, 2e5] for k in range(1, 7)])
    return {"a": good_a, "b": good_b, "broken": broken, "root": root}


@pytest.fixture(scope="module")
def reference(scenarios):
    """The six good scenarios solved by an uninterrupted batch on the local pool (Python API)."""
    root = scenarios["root"] / "reference"
    table = allocator.batch([scenarios["a"], scenarios["b"]], sweep={"strategy.budget": BUDGETS},
                            jobs=2, models_dir=root / "models", out=root / "out")
    return table, root


@pytest.fixture(scope="module")
def dask_cluster():
    """A Dask cluster the test starts itself: two single-threaded worker processes."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        yield cluster


def rendered(browser, page: Path) -> dict:
    """Open a page in headless chromium with the network cut off; what a reader would see."""
    requests: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            requests.append(url)
            route.abort()

    tab = browser.new_page()
    try:
        tab.route("**/*", only_local)
        tab.goto(page.as_uri())
        return {"rows": tab.locator("table tbody tr").count(),
                "text": tab.inner_text("body"), "external_requests": requests,
                "images": tab.eval_on_selector_all(
                    "img", "els => els.map(e => e.complete && e.naturalWidth)")}
    finally:
        tab.close()


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison without the columns that name one particular run (id, folder, time)."""
    return table.drop(columns=list(RUN_IDENTITY_COLUMNS)).reset_index(drop=True)


def assignments(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {row.label: pd.read_csv(Path(row.run_folder) / "assignment.csv", dtype=str)
            [["unit_id", "territory_id", "rep_id"]]
            for row in table.itertuples() if row.status != "error"}


def test_help_lists_the_options():
    for command, options in (("batch", ["--sweep", "--jobs", "--scheduler", "--dask-local",
                                        "--resume", "--json", "--time-limit", "--seed"]),
                             ("size", ["--headcount", "--jobs", "--scheduler", "--dask-local",
                                       "--resume", "--json"])):
        result = run(command, "--help")
        assert result.exit_code == 0, result.output
        for option in options:
            assert option in result.output, (command, option)


@pytest.mark.parametrize("sweep, message", [
    ("strategy.budgt=1,2", "unknown setting 'budgt'"),
    ("strategy.budget=abc", "does not fit setting 'strategy.budget'"),
    ("alignment.balance=0.1", "is a list"),
    ("strategy.headcount.min=2.5", "does not fit setting 'strategy.headcount.min'"),
    ("strategy.budget", "KEY=V1,V2"),
    ("strategy.budget=1,,2", "empty value"),
    ("strategy.budget=1e6,1000000", "given twice"),
])
def test_bad_sweeps_are_input_errors(scenarios, tmp_path, sweep, message):
    result = run("batch", scenarios["a"], "--sweep", sweep, "--models-dir", tmp_path / "m",
                 "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists() and not (tmp_path / "o").exists()


def test_setting_paths_reach_list_elements():
    assert parse_setting_path("alignment.tolerance").parts == ("alignment", "balance", 0,
                                                                "tolerance")
    assert parse_setting_path("alignment.balance[workload].tolerance").parts == (
        "alignment", "balance", "workload", "tolerance")
    with pytest.raises(InputError, match="known: budget"):
        allocator.batch(["unused.yaml"], sweep={"strategy.budgt": [1]})


def test_engine_errors_survive_the_trip_from_a_worker():
    error = pickle.loads(pickle.dumps(PlanCheckError(["territory T1 is not contiguous"])))
    assert str(error) == "plan check failed:\n  - territory T1 is not contiguous"
    located = pickle.loads(pickle.dumps(InputError("bad", file="u.csv", row=3, column="w")))
    assert (located.file, located.row, located.column) == ("u.csv", 3, "w")


def test_api_returns_the_comparison(reference, scenarios):
    table, root = reference
    assert list(table["label"]) == [f"{name} strategy.budget={b}" for name in ("alpha", "beta")
                                    for b in BUDGETS]
    assert (table["status"] != "error").all(), table["error"].tolist()
    assert table["strategy.budget"].tolist() == BUDGETS * 2
    for column in ("headcount", "hires", "expected_sales", "contribution", "cost", "gap",
                   "runtime_s", "workload_index_max", "scenario_sha256"):
        assert table[column].notna().all(), column
    # a larger budget never lowers the best contribution of the same scenario
    for name in ("alpha", "beta"):
        rows = table[table["scenario"] == name]
        assert rows["contribution"].is_monotonic_increasing
        assert (rows["cost"] <= rows["strategy.budget"] + 1e-6).all()
    written = pd.read_csv(root / "out" / "comparison.csv")
    assert len(written) == 6 and list(written["label"]) == list(table["label"])
    assert table.attrs["summary"]["solved"] == 6


def test_dask_batch_records_the_broken_scenario_and_resumes(browser, scenarios, reference,
                                                             dask_cluster, tmp_path):
    models, out = tmp_path / "models", tmp_path / "out"
    args = ["batch", scenarios["a"], scenarios["b"], scenarios["broken"], "--sweep", SWEEP,
            "--scheduler", dask_cluster.scheduler_address, "--models-dir", models, "--out", out,
            "--json"]
    first = run(*args)
    assert first.exit_code == 1 and first.exception.__class__ is SystemExit, first.exception
    summary = json.loads(first.stdout)
    assert (summary["scenarios"], summary["solved"], summary["failed"]) == (9, 6, 3)
    assert "Dask" in summary["executor"]
    # the progress display counts scenarios done, running and failed
    assert "9/9" in first.stderr and "3 failed" in first.stderr
    assert "3 of 9 scenarios failed" in first.stderr

    table = pd.read_csv(out / "comparison.csv")
    broken = table[table["scenario_file"] == str(scenarios["broken"].resolve())]
    assert len(broken) == 3 and (broken["status"] == "error").all()
    for message in broken["error"]:
        assert message.startswith("InputError:") and "units.csv" in message
        assert "workload" in message
    good = table[table["status"] != "error"]
    assert len(good) == 6 and good["error"].isna().all()
    page = rendered(browser, out / "comparison.html")
    assert page["rows"] == 9 and page["external_requests"] == []
    assert "InputError" in page["text"] and "beta strategy.budget=500000" in page["text"]

    # same seed, same plans: Dask workers and the local pool give the same assignments
    ref_table, ref_root = reference
    on_dask = assignments(good)
    on_pool = assignments(ref_table)
    assert on_dask.keys() == on_pool.keys()
    for label, frame in on_pool.items():
        pd.testing.assert_frame_equal(on_dask[label], frame, obj=label)
    ref_written = pd.read_csv(ref_root / "out" / "comparison.csv")
    pd.testing.assert_frame_equal(comparable(good), comparable(ref_written), check_dtype=False)

    folders_before = sorted(p.name for p in (models).glob("*/*"))
    again = run(*args, "--resume")
    assert again.exit_code == 1, again.output
    resumed = json.loads(again.stdout)
    assert (resumed["solved"], resumed["resumed"], resumed["failed"]) == (0, 6, 3)
    assert sorted(p.name for p in models.glob("*/*")) == folders_before
    pd.testing.assert_frame_equal(pd.read_csv(out / "comparison.csv"), table)


def test_failing_validation_is_one_row_and_the_others_go_on(scenarios, dask_cluster, tmp_path):
    table = allocator.batch(scenarios["a"], sweep=["alignment.tolerance=0.2,1.5"],
                            scheduler=dask_cluster.scheduler_address,
                            models_dir=tmp_path / "models", out=tmp_path / "out")
    assert table["status"].tolist()[0] != "error"
    assert table["status"].tolist()[1] == "error"
    assert "alignment.balance" in table["error"].iloc[1] and "1.5" in table["error"].iloc[1]


def test_killed_batch_resumes_to_the_same_results(scenarios, reference, dask_cluster, tmp_path):
    ref_table, ref_root = reference
    models, out = tmp_path / "models", tmp_path / "out"
    args = [str(ALLOCATOR), "batch", str(scenarios["a"]), str(scenarios["b"]), "--sweep", SWEEP,
            "--jobs", "2", "--models-dir", str(models), "--out", str(out), "--quiet"]
    reference_wall = ref_table.attrs["summary"]["wall_s"]
    delay = random.uniform(0.2, 1.0 + 0.8 * reference_wall)
    process = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its workers, as a machine crash would
    process.wait()
    assert process.returncode == -signal.SIGKILL, f"the batch ended before the kill at {delay:.2f} s"

    # nothing half-written: every visible run folder is complete; leftovers are hidden .tmp-*
    for folder in models.glob("*/*"):
        if folder.name.startswith("."):
            assert folder.name.startswith(".tmp-"), folder
        else:
            read_run(folder)
    assert not out.exists() or (out / "comparison.csv").is_file()
    done_before_kill = len([f for f in models.glob("*/*") if not f.name.startswith(".")])

    # resumed on the (already running) Dask cluster: any executor finishes any batch
    resumed = run("batch", scenarios["a"], scenarios["b"], "--sweep", SWEEP, "--scheduler",
                  dask_cluster.scheduler_address, "--models-dir", models, "--out", out,
                  "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["resumed"] == done_before_kill, (delay, summary)
    assert summary["solved"] == 6 - done_before_kill
    table = pd.read_csv(out / "comparison.csv")
    visible = [f for f in models.glob("*/*") if not f.name.startswith(".")]
    assert len(visible) == 6  # no scenario solved twice
    expected = pd.read_csv(ref_root / "out" / "comparison.csv")
    pd.testing.assert_frame_equal(comparable(table), comparable(expected))
    for label, frame in assignments(expected).items():
        pd.testing.assert_frame_equal(assignments(table)[label], frame, obj=label)
