"""Mid-year re-optimisation on a 5 x 5 grid with five reps, on every solver."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from allocator.alignment import LocalSearch
from allocator.cli import main
from allocator.disruption import DisruptionLimit, PeopleChanges, read_people_changes
from allocator.exceptions import InfeasibleError, InputError
from allocator.reoptimize import reoptimize
from conftest import SOLVERS, write_scenario

AS_OF = date(2027, 6, 30)
HOMES = ["U1", "U5", "U21", "U25", "U13"]


def solve_parent(root: Path, solver: dict | None = None) -> tuple[Path, Path]:
    """A solved 5 x 5 run (reps kept, head count fixed at 5) and synthetic actuals to June;
    ``solver`` settings of the scenario, if given."""
    from allocator.actuals import simulate_actuals
    from allocator.api import solve_and_write
    from allocator.runs import read_run

    potential = [1_000_000 + 150_000 * (k % 4) for k in range(25)]
    scenario = write_scenario(
        root / "scenario", rows=5, cols=5, sites=[],
        reps=[{"rep_id": f"R{k + 1}", "home_unit": u, "annual_cost": 90000}
              for k, u in enumerate(HOMES)],
        workload=[300 + 60 * ((3 * k) % 7) for k in range(25)], potential=potential,
        last_year_sales=[round(0.5 * p) for p in potential],
        settings={"reps": {"lock": "keep"},
                  "strategy": {"headcount": {"min": 5, "max": 5}, "budget": 2_000_000},
                  "alignment": {"balance": [{"measure": "workload", "tolerance": 0.15}]},
                  **({"solver": solver} if solver else {})})
    folder, _ = solve_and_write(scenario, models_dir=root / "models")
    actuals = root / "actuals.csv"
    simulate_actuals(read_run(folder), through="2027-06", seed=1).to_csv(actuals, index=False)
    return folder, actuals


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> tuple[Path, Path]:
    return solve_parent(tmp_path_factory.mktemp("reoptimize"))


def sold_and_annual_cents(folder: Path, actuals: Path) -> tuple[int, int]:
    table = pd.read_csv(actuals, dtype={"unit_id": str})
    quotas = pd.read_csv(folder / "quotas.csv")
    return (int(round(table["sales"].sum() * 100)),
            int(sum(round(v * 100) for v in quotas["annual"])))


@pytest.mark.parametrize("solver", SOLVERS)
def test_unchanged_data_moves_nothing(parent, solver):
    folder, actuals = parent
    for limit in (None, DisruptionLimit.parse("value:20%")):
        result = reoptimize(folder, actuals, AS_OF, max_moved=limit, solver=solver,
                            time_limit=20)
        assert result.disruption["units_moved"] == 0
        assert result.moves.empty
        parent_table = pd.read_csv(folder / "assignment.csv", dtype=str)
        assert list(result.plan.units["territory_id"]) == list(parent_table["territory_id"])


@pytest.mark.parametrize("solver", SOLVERS)
def test_departure_moves_only_what_balance_needs(parent, solver):
    folder, actuals = parent
    cap = DisruptionLimit.parse("40%")
    result = reoptimize(folder, actuals, AS_OF, people=PeopleChanges(departures=("R2",)),
                        max_moved=cap, solver=solver, time_limit=20)
    moves, mid = result.moves, result.mid
    departed = set(pd.read_csv(folder / "assignment.csv", dtype=str).query("rep_id == 'R2'")
                   ["unit_id"])
    # every unit of the departed rep moves, and only those are forced
    assert departed <= set(moves["unit_id"])
    assert set(moves.loc[moves["forced"], "unit_id"]) == departed
    assert "R2" not in set(result.plan.reps["rep_id"])
    # every other move is needed: undoing any one breaks balance or contiguity
    position = {u: k for k, u in enumerate(mid.scenario.units["unit_id"])}
    for uid in moves.loc[~moves["forced"], "unit_id"]:
        undone = result.plan.assignment.copy()
        undone[position[uid]] = mid.owner[position[uid]]
        search = LocalSearch(mid.problem, mid.staffing, undone)
        broken = search.violation() > 1e-9 or any(
            len(search.components(t)) > 1 for t in range(len(mid.staffing.sites)))
        assert broken, f"moving {uid} was not needed"
    # the cap holds; disruption figures agree with moves.csv
    assert result.disruption["units_moved"] == len(moves) <= 0.40 * 25
    assert result.disruption["value_moved"] == pytest.approx(moves["last_year_sales"].sum())
    assert result.disruption["reps_affected"] >= 2
    # remaining quotas: annual quota total less sold so far, to the cent, months 7..12 only
    sold, annual = sold_and_annual_cents(folder, actuals)
    assert int(round(result.quotas["annual"].sum() * 100)) == annual - sold
    assert (result.quotas[["01", "02", "03", "04", "05", "06"]] == 0).all().all()
    months = result.quotas[["07", "08", "09", "10", "11", "12"]]
    assert ((months.sum(axis=1) * 100).round() == (result.quotas["annual"] * 100).round()).all()
    # equally attainable: remaining quota over remaining expected sales is the same for all
    attainability = result.quota_detail["attainability"]
    assert attainability.max() - attainability.min() < 1e-4


def test_cap_too_small_is_a_diagnosis_not_an_overrun(parent):
    folder, actuals = parent
    people = PeopleChanges(departures=("R2",))
    needed = reoptimize(folder, actuals, AS_OF, people=people, time_limit=20)
    n_needed = needed.disruption["units_moved"]
    assert n_needed > needed.disruption["forced_units"]  # balance needs more than the forced
    with pytest.raises(InfeasibleError) as caught:
        reoptimize(folder, actuals, AS_OF, people=people, time_limit=20,
                   max_moved=DisruptionLimit.parse(f"{(n_needed - 1) / 25:.4f}"))
    assert caught.value.exit_code == 3
    assert caught.value.diagnosis
    exact = reoptimize(folder, actuals, AS_OF, people=people, time_limit=20,
                       max_moved=DisruptionLimit.parse(f"{n_needed / 25:.4f}"))
    assert exact.disruption["units_moved"] <= n_needed


@pytest.mark.parametrize("solver", SOLVERS)
def test_tradeoff_curve_is_monotone(parent, solver):
    folder, actuals = parent
    result = reoptimize(folder, actuals, AS_OF, people=PeopleChanges(departures=("R2",)),
                        max_moved=DisruptionLimit.parse("60%"), tradeoff=4, solver=solver,
                        time_limit=12)
    curve = result.tradeoff
    assert len(curve) == 4
    assert (np.diff(curve["cap"]) >= 0).all()
    assert (curve["disruption"] <= curve["cap"] + 1e-9).all()
    assert (np.diff(curve["objective"]) >= -1e-6).all()
    assert curve["units_moved"].iloc[0] == result.disruption["units_moved"]


def test_vacancy_keeps_its_territory(parent, tmp_path):
    folder, actuals = parent
    people = tmp_path / "people.yaml"
    people.write_text(yaml.safe_dump({"vacancies": ["R3"]}))
    result = reoptimize(folder, actuals, AS_OF, people=read_people_changes(people),
                        time_limit=20)
    assert result.moves.empty  # the open seat keeps its units, nobody else has to move
    quotas = result.quotas.set_index("rep_id")
    assert "VACANT-R3" in quotas.index and "R3" not in quotas.index
    sold, annual = sold_and_annual_cents(folder, actuals)
    assert int(round(result.quotas["annual"].sum() * 100)) == annual - sold


def test_hire_gets_a_territory_and_a_ramped_quota(parent, tmp_path):
    folder, actuals = parent
    people = tmp_path / "people.yaml"
    people.write_text(yaml.safe_dump({"hires": [
        {"rep_id": "H1", "home_unit": "U3", "start_month": 9, "ramp_months": 2,
         "ramp_productivity": 0.5}]}))
    result = reoptimize(folder, actuals, AS_OF, people=read_people_changes(people),
                        time_limit=20)
    plan_units = result.plan.units
    assert (plan_units["rep_id"] == "H1").sum() >= 2  # carved out of its neighbours
    assert set(result.moves.loc[result.moves["forced"], "unit_id"]) == {"U3"}  # its base
    hire = result.quotas.set_index("rep_id").loc["H1"]
    assert (hire[["07", "08"]] == 0).all() and hire["09"] > 0
    # September and October at half activity, then full: 1 : 1 : 2 : 2 x 1.2 (December)
    assert hire["09"] == pytest.approx(hire["10"], abs=0.01)
    assert hire["11"] == pytest.approx(2 * hire["09"], rel=1e-3)
    assert hire["12"] == pytest.approx(2.4 * hire["09"], rel=1e-3)
    sold, annual = sold_and_annual_cents(folder, actuals)
    assert int(round(result.quotas["annual"].sum() * 100)) == annual - sold


def test_limit_syntax():
    assert DisruptionLimit.parse("5%") == DisruptionLimit("units", 0.05)
    assert DisruptionLimit.parse("value:2.5%") == DisruptionLimit("value", 0.025)
    assert DisruptionLimit.parse("units:0.1") == DisruptionLimit("units", 0.1)
    for bad in ("5", "sales:5%", "-1%", "five", "150%"):
        with pytest.raises(InputError):
            DisruptionLimit.parse(bad)


def test_cli_writes_a_child_run(parent, tmp_path):
    folder, actuals = parent
    people = tmp_path / "people.yaml"
    people.write_text("departures: [R2]\n")
    models = tmp_path / "models"
    out = CliRunner().invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                    "2027-06-30", "--people", str(people), "--max-moved", "40%",
                                    "--tradeoff", "3", "--models-dir", str(models), "--json"])
    assert out.exit_code == 0, out.output
    record = json.loads(out.output)
    child = Path(models) / record["scenario"] / record["run_id"]
    assert record["parent_run"] == str(folder.resolve())
    moves = pd.read_csv(child / "moves.csv")
    assert list(moves.columns[:10]) == ["unit_id", "name", "from_territory", "from_rep",
                                        "to_territory", "to_rep", "potential", "last_year_sales",
                                        "ytd_sales", "forced"]
    assert record["disruption"]["units_moved"] == len(moves)
    assert (child / "tradeoff.png").stat().st_size > 0
    assert len(pd.read_csv(child / "tradeoff.csv")) == 3
    from allocator.runs import read_run

    again = read_run(child)  # the child is a readable run folder
    assert len(again.assignment) == 25


def test_cli_errors(parent, tmp_path):
    folder, actuals = parent
    runner = CliRunner()
    bad_limit = runner.invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                     "2027-06-30", "--max-moved", "lots"])
    assert bad_limit.exit_code == 2 and "--max-moved" in bad_limit.output
    people = tmp_path / "people.yaml"
    people.write_text("departures: [R99]\n")
    unknown = runner.invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                   "2027-06-30", "--people", str(people)])
    assert unknown.exit_code == 2 and "R99" in unknown.output
    wrong_date = runner.invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                      "2027-05-31"])
    assert wrong_date.exit_code == 2 and "2027-06" in wrong_date.output
    people.write_text("departures: [R2]\n")
    too_small = runner.invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                     "2027-06-30", "--people", str(people), "--max-moved", "4%",
                                     "--models-dir", str(tmp_path / "m")])
    assert too_small.exit_code == 3 and "cap" in too_small.output
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").rglob("result.json"))


def test_recalibrated_response_changes_sales_not_territories(parent, tmp_path):
    folder, actuals = parent
    recalibrated = tmp_path / "response_recalibrated.yaml"
    recalibrated.write_text(yaml.safe_dump({"response": {"floor": 0.05, "ceiling": 0.45,
                                                         "half": 0.5}}))
    before = reoptimize(folder, actuals, AS_OF, time_limit=20)
    after = reoptimize(folder, actuals, AS_OF, recalibrated=recalibrated, time_limit=20)
    assert after.moves.empty  # balance does not depend on the response: nothing has to move
    assert after.plan.kpis["expected_sales"] < before.plan.kpis["expected_sales"]
    sold, annual = sold_and_annual_cents(folder, actuals)
    assert int(round(after.quotas["annual"].sum() * 100)) == annual - sold


@pytest.mark.parametrize("solver", SOLVERS)
def test_disruption_weight_trades_moves_for_objective(parent, solver, tmp_path):
    """A larger price on moved sales never moves more; free moves (weight 0, no cap) reach at
    least the objective of a run held to a cap.

    Both hold for optimal plans. The small-map search prices a territory's sales to first order
    around the current plan, so it is exact only where sales do not depend on the territory:
    here the recalibrated response sells a fixed share of potential whatever the effort, and
    the re-solves weigh travel and moved value exactly."""
    folder, actuals = parent
    flat = tmp_path / "flat_response.yaml"
    flat.write_text(yaml.safe_dump({"response": {"floor": 0.3, "ceiling": 0.3 + 1e-9,
                                                 "half": 0.5}}))
    people = PeopleChanges(departures=("R2",))
    moved_value, objectives = [], {}
    for weight in (0.0, 0.02, 0.2):
        result = reoptimize(folder, actuals, AS_OF, people=people, disruption_weight=weight,
                            solver=solver, time_limit=3, recalibrated=flat)
        assert result.disruption["disruption_weight"] == weight
        assert result.disruption["value_moved"] == pytest.approx(
            result.moves["last_year_sales"].sum())
        moved_value.append(result.disruption["value_moved"])
        objectives[weight] = result.plan.objective()
    assert all(later <= earlier + 1e-6 for earlier, later in
               zip(moved_value, moved_value[1:], strict=False)), moved_value
    capped = reoptimize(folder, actuals, AS_OF, people=people, disruption_weight=0.0,
                        max_moved=DisruptionLimit.parse("value:25%"), solver=solver,
                        time_limit=3, recalibrated=flat)
    assert capped.disruption["value_moved"] <= 0.25 * capped.mid.scenario.units[
        "last_year_sales"].sum() + 1e-6
    assert objectives[0.0] >= capped.plan.objective() - 1e-6 * abs(capped.plan.objective())


def test_ejection_chains_restore_balance_within_the_cap(parent):
    """The large-instance repair: chains of border moves balance the map after a departure,
    keep every territory connected and never pass the cap (here: the forced moves only)."""
    from allocator import clock
    from allocator.ejection import ChainRepair
    from allocator.reoptimize import freeze
    from allocator.runs import read_run

    folder, _ = parent
    record = read_run(folder)
    mid = freeze(record, record.load_scenario(), PeopleChanges(departures=("R2",)))
    per_unit = np.ones(len(mid.owner), dtype=np.int64)
    before = LocalSearch(mid.problem, mid.staffing, mid.start).violation()
    assert before > 0
    forced = int(mid.forced.sum())
    for cap in (25, forced):
        chains = ChainRepair(mid.problem, mid.staffing, mid.start, mid.owner, per_unit, cap)
        chains.repair(deadline=clock.now() + 30)
        chains.return_home()
        assert chains.disruption() <= cap
        after = LocalSearch(mid.problem, mid.staffing, chains.assignment)
        assert all(len(after.components(t)) == 1 for t in range(len(mid.staffing.sites)))
        assert (chains.assignment[mid.staffing.sites] == np.arange(len(mid.staffing.sites))).all()
        if cap == forced:
            # no room for any extra move: only the departed rep's units moved (the cap counts
            # each of them), passed between neighbours where that lowers the imbalance
            assert after.violation() <= before + 1e-9
        else:
            assert after.violation() <= 1e-9
            assert forced < chains.disruption()  # balance needed more than the forced moves


def test_hires_over_the_budget_are_a_diagnosis(parent, tmp_path):
    folder, actuals = parent
    people = tmp_path / "people.yaml"
    people.write_text(yaml.safe_dump({"hires": [
        {"rep_id": "H1", "home_unit": "U3", "start_month": 7, "annual_cost": 4_000_000}]}))
    with pytest.raises(InfeasibleError) as caught:
        reoptimize(folder, actuals, AS_OF, people=read_people_changes(people), time_limit=10)
    message = str(caught.value)
    # H1 works six months: half the salary, plus hiring and training (10,000 and 5,000)
    assert "the hires cost 2,015,000 USD; the budget leaves" in message
    left = float(message.split("the budget leaves ")[1].split(" ")[0].replace(",", ""))
    assert 0 < left < 2_000_000 - 4 * 90_000
    out = CliRunner().invoke(main, ["reoptimize", str(folder), str(actuals), "--as-of",
                                    "2027-06-30", "--people", str(people), "--models-dir",
                                    str(tmp_path / "m")])
    assert out.exit_code == 3, out.output
    assert "the hires cost" in out.output and "H1" in out.output
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").rglob("result.json"))


# --- the whole-map transfer plan ------------------------------------------------------------------

def chain_instance(root: Path):
    """A 2 x 8 grid cut into four 2 x 2 territories A | B | C | D in a row, one rep each.

    Mean 100 per rep, band 90..110. A (112) is over, D (88) under, B and C full. A unit of A
    can only reach B, so A must give a unit to B (16 leaves A at 96), B then one to C (25
    leaves B at 91), C one to D (20: C at 105, D at 108): three moves, and no fewer can do,
    since A and D are two territories apart and every crossing is a unit of its own.
    """
    from allocator.alignment import AlignmentProblem, Staffing
    from allocator.scenario import load_scenario

    top = [40, 16, 25, 25, 30, 20, 22, 22]
    bottom = [40, 16, 25, 25, 30, 20, 22, 22]
    path = write_scenario(
        root, rows=2, cols=8, sites=[], workload=top + bottom,
        reps=[{"rep_id": f"R{k + 1}", "home_unit": u, "annual_cost": 90000}
              for k, u in enumerate(["U1", "U3", "U5", "U8"])],
        settings={"reps": {"lock": "keep"}, "strategy": {"headcount": {"min": 4, "max": 4}},
                  "alignment": {"balance": [{"measure": "workload", "tolerance": 0.10}]}})
    problem = AlignmentProblem.from_scenario(load_scenario(path))
    staffing = Staffing(np.array([0, 2, 4, 7]), [[0], [1], [2], [3]], np.zeros(4, dtype=np.int64))
    assignment = np.array([(k % 8) // 2 for k in range(16)])
    return problem, staffing, assignment


@pytest.mark.parametrize("solver", SOLVERS)
def test_transfer_plan_moves_the_hand_computed_minimum(tmp_path, solver):
    from allocator.ejection import ChainRepair
    from allocator.transfers import TransferRepair, plan_transfers

    problem, staffing, start = chain_instance(tmp_path)
    cost = np.ones(problem.n, dtype=np.int64)
    assert LocalSearch(problem, staffing, start).violation() > 0
    plan = plan_transfers(problem, staffing, start, start, cost, cap_left=16, solver=solver,
                          time_limit=10)
    assert plan.slack == 0
    assert plan.planned_moves == 3
    assert sorted((t.source, t.target) for t in plan.transfers) == [(0, 1), (1, 2), (2, 3)]
    repair = TransferRepair(problem, staffing, start, start, cost, 16, solver)
    done = repair.repair(deadline=float("inf"))
    search = LocalSearch(problem, staffing, done)
    assert search.violation() <= 1e-9
    assert all(len(search.components(t)) == 1 for t in range(4))
    assert int((done != start).sum()) == 3
    # with a cap of two moves balance cannot be reached: the plan says so through its slack,
    # and the repair never goes past the cap
    short = plan_transfers(problem, staffing, start, start, cost, cap_left=2, solver=solver,
                           time_limit=10)
    assert short.slack > 0 and short.planned_moves <= 2
    capped = TransferRepair(problem, staffing, start, start, cost, 2, solver)
    assert int((capped.repair(deadline=float("inf")) != start).sum()) <= 2
    # the chains reach balance too, never with fewer moves than the plan's minimum
    chains = ChainRepair(problem, staffing, start, start, cost, 16)
    chains.repair(deadline=float("inf"))
    chains.return_home()
    assert int((chains.assignment != start).sum()) >= 3


# --- the same moves on a busy and an idle machine ---------------------------------------------

@pytest.fixture(scope="module")
def large_parent(tmp_path_factory) -> tuple[Path, Path]:
    """The 5 x 5 parent with every map treated as large (``exact_max_pairs: 0``)."""
    return solve_parent(tmp_path_factory.mktemp("large"),
                        solver={"exact_max_pairs": 0, "time_limit": 10})


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_reoptimizing_twice_gives_the_same_moves_even_when_the_machine_is_busy(large_parent,
                                                                                solver):
    """The search reads the work clock, never the wall: two re-optimisations of the same
    departure give the same moves, one of them while a busy thread takes half the CPU time
    from it. The scenario treats every map as large (``exact_max_pairs: 0``), so the whole-map
    transfer plan (HiGHS, stopped by a node limit), the ejection chains and the neighbourhood
    re-solves on ``solver`` (a node limit too) all run; CP-SAT stops on its own deterministic
    time."""
    import threading

    folder, actuals = large_parent
    people = PeopleChanges(departures=("R2",))

    def run() -> tuple:
        least = reoptimize(folder, actuals, AS_OF, people=people, solver=solver, time_limit=6,
                           max_moved=DisruptionLimit.parse("60%"))
        assert any(line.startswith("planned transfers") for line in least.log)
        # the objective mode searches until its limit: how many re-solves fit in it is what
        # a wall clock would change on a busy machine
        weighted = reoptimize(folder, actuals, AS_OF, people=people, solver=solver,
                              time_limit=3, disruption_weight=0.0, tradeoff=3)
        assert weighted.outcome.resolves > 0
        return (least.moves.to_csv(index=False), least.plan.assignment.tolist(),
                least.disruption["extra_moves_lower_bound"], weighted.outcome.resolves,
                weighted.moves.to_csv(index=False),
                weighted.tradeoff.drop(columns=["assignment"]).to_csv(index=False))

    quiet = run()
    stop = threading.Event()

    def busy() -> None:  # holds the interpreter as much as it can
        while not stop.is_set():
            sum(range(10_000))

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        loaded = run()
    finally:
        stop.set()
        thread.join()
    assert loaded == quiet
    assert quiet[0].count("\n") > 1  # the departure moved units: the runs decided something
