"""Mid-year re-optimisation: a better plan for the rest of the year that moves few units.

Start: a solved run (the *parent*), the actuals so far, and what changed (people, locks,
recalibrated potential). The people are fixed: the parent's reps, less departures, plus hires;
a vacancy keeps its territory unstaffed. The parent's assignment is the incumbent.

Model, for a set ``K`` of adjacent territories (all of them on a small instance), with the units
of ``K`` free and everything else fixed. Besides the alignment families of
:mod:`allocator.formulation` (assignment, sites, locks, balance, flow contiguity):

- *owner* ``h(i)``: the territory that continues the parent territory of unit ``i`` (same base,
  at least one rep in common); a unit whose owner is gone has none and counts as moved anyway;
- *moved* ``m_i = 1 - x_{i h(i)}``, and the disruption ``D = sum_i d_i m_i`` with ``d_i = 1``
  (``--max-moved units:...``) or ``d_i`` = last year's sales (``value:...``), rounded up to whole
  currency so that the integer row is never looser than the real one;
- the cap ``D <= cap`` over *all* units (the moves outside ``K`` use part of it);
- objective, in the order the stages solve it: balance slack (only while a territory is out of
  balance), then ``D`` (default: move as little as possible), then travel less the sales a unit
  adds to its territory, ``c_it - margin * phi_i(lambda_t)`` with ``phi`` the conjugate of the
  response at the territory's current price of an hour ``lambda_t`` (a first-order model of
  expected sales); with ``--disruption-weight w`` the last stage instead prices every moved unit
  at ``w`` times its last year's sales, and no disruption stage runs.

A re-solve is kept only if it is strictly better (less out of balance; then less disruption;
then a higher objective re-evaluated exactly, with the effort spread again) and the cap holds.
Large instances restore balance with the better of two repairs, a whole-map plan of transfers
between territories (:mod:`allocator.transfers`) and ejection chains
(:mod:`allocator.ejection`), then re-solve neighbourhoods exactly: around any territory still
out of balance, then around moved units to move fewer. ``--tradeoff N`` sweeps N caps from the
least disruption up: each point starts from the previous one, which is feasible for the larger
cap, so the curve never goes down.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pulp

from allocator import clock
from allocator.alignment import AlignmentProblem, LocalSearch, Staffing
from allocator.checker import assert_plan
from allocator.disruption import DisruptionLimit, Locks, PeopleChanges
from allocator.ejection import ChainRepair
from allocator.exceptions import InfeasibleError, InputError, SpecificationError
from allocator.formulation import hint_flows
from allocator.improve import territory_graph
from allocator.plan import MONTHS, Plan, make_plan, split_cents
from allocator.response import conjugate, marginal_at_zero, spread_effort, unit_sales
from allocator.scenario import Scenario
from allocator.settings import SolverSpec
from allocator.sizing import economics
from allocator.solvers import solve_counted
from allocator.transfers import TransferRepair

Progress = Callable[[str], None]

VACANT_PREFIX = "VACANT-"
VACANCY_HOURS = 1e-6  # an open seat sells nothing; a positive sliver keeps shares defined
DEFAULT_TRADEOFF_SHARE = 0.10  # the sweep's largest cap when --max-moved is not given
TRADEOFF_SHARE_OF_TIME = 0.4  # of the time limit, kept for the trade-off sweep on large maps
PLAN_SOLVER = "highs"  # solver of the whole-map transfer plan (see Reoptimizer.repair)


# --- the parent run and the frozen mid-year scenario -------------------------------------------

@dataclass
class MidYear:
    """The mid-year problem: people fixed, the parent assignment carried over.

    ``owner[i]`` is the child territory that continues unit ``i``'s parent territory, or -1;
    ``start`` is the parent assignment in child territories (units of a dissolved territory
    handed to a neighbour, new bases given their own site unit).
    """

    parent_scenario: Scenario
    scenario: Scenario
    problem: AlignmentProblem
    staffing: Staffing
    start: np.ndarray
    owner: np.ndarray
    forced: np.ndarray  # units that change owner whatever the plan (their owner is gone)
    parent_territory: np.ndarray  # parent territory id of each unit
    parent_rep: np.ndarray  # parent lead rep of each unit
    rep_kind: dict[str, str]  # child rep id -> existing | hire | vacancy
    rep_start: dict[str, int]
    rep_ramp: dict[str, tuple[int, float]]
    rep_parent_territory: dict[str, str]
    notes: list[str] = field(default_factory=list)


def _ids(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def freeze(run, scenario: Scenario, changes: PeopleChanges, locks: Locks | None = None,
           potential: np.ndarray | None = None) -> MidYear:
    """The mid-year scenario of ``run`` with the people changes applied (a validated variant).

    Everyone who works in the rest of the year is an existing rep of the variant (head count
    fixed, nobody released or hired by the optimiser); parent hires keep their plan-year hours
    and cost; a vacancy is a rep with no hours and no cost, so its territory stays as it was.
    """
    units = scenario.units
    position = {uid: k for k, uid in enumerate(units["unit_id"])}
    table = run.assignment
    if len(table) != len(units) or set(table["unit_id"]) != set(position):
        raise InputError("the run's assignment does not cover the scenario's units (was the "
                         "scenario changed after the run?)", file=str(run.path / "assignment.csv"))
    reps = run.reps.copy()
    reps["rep_id"] = reps["rep_id"].astype(str)
    known = set(reps["rep_id"])
    where = changes.file or "people changes"
    for section, ids in (("departures", changes.departures), ("vacancies", changes.vacancies)):
        for rid in ids:
            if rid not in known:
                raise InputError(f"not a rep of the parent plan (its reps: {_sample(known)})",
                                 file=where, column=section, value=rid)
    for hire in changes.hires:
        if hire.rep_id in known:
            raise InputError("a hire's rep_id is already a rep of the parent plan", file=where,
                             column="hires.rep_id", value=hire.rep_id)
        if hire.home_unit not in position:
            raise InputError("home_unit is not a unit of the scenario (quote ids with leading "
                             "zeros in YAML, e.g. \"01001\")", file=where,
                             column="hires.home_unit", value=hire.home_unit)
    gone = set(changes.departures)
    vacant = set(changes.vacancies)

    # parent territories by base (site unit)
    terr = run.territories
    parent_site = {str(t): position[str(s)] for t, s in zip(terr["territory_id"], terr["site_unit"])}
    parent_reps = {str(t): set(str(r).split(";")) for t, r in zip(terr["territory_id"],
                                                                 terr["rep_ids"])}
    unit_terr = table.set_index("unit_id").loc[units["unit_id"], "territory_id"].astype(str)
    unit_lead = table.set_index("unit_id").loc[units["unit_id"], "rep_id"].astype(str)

    # everyone who works in the rest of the year
    hiring = scenario.settings.hiring
    rows, kind, start_month_of, ramp, identity, origin = [], {}, {}, {}, {}, {}
    for rep in reps.itertuples():
        if rep.rep_id in gone:
            continue
        home = parent_site[str(rep.territory_id)]
        if rep.rep_id in vacant:
            rid = VACANT_PREFIX + rep.rep_id
            rows.append((rid, f"vacancy (was {rep.rep_id})", home, 0.0, VACANCY_HOURS))
            kind[rid], start_month_of[rid], ramp[rid] = "vacancy", 1, (0, 1.0)
            identity[rid] = rep.rep_id
            origin[rid] = str(rep.territory_id)
            continue
        rows.append((rep.rep_id, str(rep.name), home, float(rep.plan_year_cost),
                     float(rep.effective_hours)))
        kind[rep.rep_id] = "hire" if rep.kind == "hire" else "existing"
        start_month_of[rep.rep_id] = int(rep.start_month) if rep.kind == "hire" else 1
        ramp[rep.rep_id] = ((hiring.ramp_months, hiring.ramp_productivity) if rep.kind == "hire"
                            else (0, 1.0))
        identity[rep.rep_id] = rep.rep_id
        origin[rep.rep_id] = str(rep.territory_id)
    for hire in changes.hires:
        ramp_months = hiring.ramp_months if hire.ramp_months is None else int(hire.ramp_months)
        ramp_prod = (hiring.ramp_productivity if hire.ramp_productivity is None
                     else float(hire.ramp_productivity))
        months = 13 - hire.start_month
        active = min(ramp_months, months)
        factor = (months - active + active * ramp_prod) / 12.0
        capacity = hiring.capacity_hours if hire.capacity_hours is None else hire.capacity_hours
        productivity = hiring.productivity if hire.productivity is None else hire.productivity
        salary = hiring.annual_cost if hire.annual_cost is None else hire.annual_cost
        cost = salary * months / 12 + hiring.hire_cost + hiring.training_cost
        rows.append((hire.rep_id, hire.name, position[hire.home_unit], float(cost),
                     float(capacity * productivity * factor)))
        kind[hire.rep_id], start_month_of[hire.rep_id] = "hire", hire.start_month
        ramp[hire.rep_id] = (ramp_months, ramp_prod)
        identity[hire.rep_id] = hire.rep_id
    if not rows:
        raise SpecificationError("the people changes leave nobody to cover the units")
    child_reps = pd.DataFrame(rows, columns=["rep_id", "name", "home", "annual_cost",
                                             "capacity_hours"])
    child_reps["productivity"] = 1.0
    child_reps["home"] = child_reps["home"].astype(np.int64)

    # owners: a parent territory continues in the child territory at its base if a rep stays
    child_units = units.copy()
    if potential is not None:
        child_units["potential"] = np.asarray(potential, dtype=float)
    homes = child_reps["home"].to_numpy()
    sites = np.array(sorted(set(int(h) for h in homes)), dtype=np.int64)
    site_pos = {int(s): t for t, s in enumerate(sites)}
    members: list[list[int]] = [[] for _ in sites]
    for k, home in enumerate(homes):
        members[site_pos[int(home)]].append(k)
    staffing = Staffing(sites, members, np.zeros(len(sites), dtype=np.int64))
    child_ids = child_reps["rep_id"].tolist()
    continues: dict[str, int] = {}
    for tid, site in parent_site.items():
        t = site_pos.get(site)
        if t is not None and parent_reps[tid] & {identity[child_ids[k]] for k in members[t]}:
            continues[tid] = t
    owner = np.array([continues.get(t, -1) for t in unit_terr], dtype=np.int64)

    # locks: the parent's own locks stay where their rep stays; the locks file adds more
    lock = child_units["lock"].astype(str).to_numpy().copy()
    dropped = sorted({r for r in lock if r and r not in set(child_ids)})
    if dropped:
        lock[np.isin(lock, dropped)] = ""
    lead_of = {t: child_ids[min(m, key=lambda k: child_ids[k])] for t, m in enumerate(members)}
    locked_territories: set[str] = set()
    if locks is not None:
        lfile = locks.file or "locks"
        tids = set(parent_site)
        for tid in locks.territories:
            if tid not in tids:
                raise InputError(f"not a territory of the parent plan (e.g. {_sample(tids)})",
                                 file=lfile, row=locks.rows.get(tid), column="territory_id",
                                 value=tid)
            if tid not in continues:
                raise InputError("cannot lock this territory: none of its reps stays",
                                 file=lfile, row=locks.rows.get(tid), column="territory_id",
                                 value=tid)
            locked_territories.add(tid)
        for uid in locks.units:
            if uid not in position:
                raise InputError("not a unit of the scenario", file=lfile,
                                 row=locks.rows.get(uid), column="unit_id", value=uid)
            if owner[position[uid]] < 0:
                raise InputError("cannot lock this unit: its rep leaves", file=lfile,
                                 row=locks.rows.get(uid), column="unit_id", value=uid)
            lock[position[uid]] = lead_of[int(owner[position[uid]])]
    for tid in locked_territories:
        lock[(unit_terr == tid).to_numpy()] = lead_of[continues[tid]]
    # a vacancy keeps its territory as it is: nobody is there to hand units over to
    for t, m in enumerate(members):
        if all(kind[child_ids[k]] == "vacancy" for k in m):
            inside = owner == t
            lock[inside] = lead_of[t]
    child_units["lock"] = lock

    headcount = len(child_reps)
    settings = scenario.settings
    reps_spec = {"lock": "keep"} if settings.reps is not None else {
        "table": "<mid-year people>", "lock": "keep"}
    child = replace(scenario, units=child_units, reps=child_reps,
                    sites=pd.DataFrame({"unit": sites, "max_hires": np.zeros(len(sites),
                                                                             dtype=np.int64)}),
                    sha256="")
    child = child.with_settings(reps=reps_spec,
                                strategy={"headcount": {"min": headcount, "max": headcount}})
    problem = AlignmentProblem.from_scenario(child)

    # the start: parent assignment; orphans to a neighbour; new bases take their site unit
    start = owner.copy()
    forced = owner < 0
    new_sites = [int(s) for s in sites if start[int(s)] != site_pos[int(s)]]
    for s in new_sites:
        forced[s] = True
        start[s] = site_pos[s]
    _hand_over(problem, staffing, start)
    search = LocalSearch(problem, staffing, start, child.settings.alignment.contiguity)
    search.repair_contiguity()
    start = search.assignment
    notes = []
    if dropped:
        notes.append(f"unit locks to reps who leave were released ({', '.join(dropped)})")
    return MidYear(scenario, child, problem, staffing, start, owner, forced,
                   unit_terr.to_numpy(dtype=object), unit_lead.to_numpy(dtype=object), kind,
                   start_month_of, ramp, origin, notes)


def _sample(ids) -> str:
    items = sorted(ids)
    return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")


def _hand_over(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray) -> None:
    """Give every unit without a territory (``-1``) to an adjacent territory, growing inwards
    from the edge so that every territory stays connected: the one with most room left under
    its balance ceiling (as a share of its reps' mean), then the nearest base."""
    lower, upper = problem.bounds(staffing)
    scale = problem.measures.sum(axis=0) / staffing.headcount
    load = np.zeros_like(upper)
    placed = assignment >= 0
    np.add.at(load, assignment[placed], problem.measures[placed])
    left = set(int(i) for i in np.flatnonzero(~placed))
    while left:
        progress = False
        for i in sorted(left, key=lambda u: -problem.measures[u, 0]):
            options = sorted({int(assignment[v]) for v in problem.adjacency[i]
                              if assignment[v] >= 0})
            if not options:
                continue
            room = ((upper[options] - load[options] - problem.measures[i]) / scale).min(axis=1)
            cost = problem.cost(np.full(len(options), i), staffing.sites[options])
            best = min(range(len(options)), key=lambda k: (room[k] < 0, -room[k], cost[k]))
            assignment[i] = options[best]
            load[options[best]] += problem.measures[i]
            left.discard(i)
            progress = True
        if not progress:  # a group with no staffed neighbour at all: the nearest base
            for i in sorted(left):
                cost = problem.cost(np.full(len(staffing.sites), i), staffing.sites)
                assignment[i] = int(np.argmin(cost))
            return


# --- the search ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    assignment: np.ndarray
    violation: float
    disruption: float  # in the cap's measure, exact
    objective: float  # contribution less the disruption price (weighted mode)
    resolves: int = 0
    improved: int = 0
    termination: str = "search_complete"


class Reoptimizer:
    """Disruption-aware search over the assignment of a :class:`MidYear` problem."""

    def __init__(self, mid: MidYear, limit: DisruptionLimit | None, weight: float | None,
                 spec: SolverSpec, deadline: float, progress: Progress | None = None) -> None:
        self.mid = mid
        self.problem = mid.problem
        self.staffing = mid.staffing
        self.spec = spec
        self.deadline = deadline
        self.weight = weight
        self.say = progress or (lambda message: None)
        units = mid.scenario.units
        self.value = units["last_year_sales"].to_numpy(float)
        measure = limit.measure if limit is not None else "value"
        self.measure = measure
        self.d = np.ones(len(units)) if measure == "units" else self.value.copy()
        self.d_int = np.ceil(self.d - 1e-9).astype(np.int64)  # the model's whole-number copy
        total = float(self.d.sum())
        self.total = total
        share = limit.share if limit is not None else 1.0
        # the integer cap on rounded-up measures is never looser than the real cap
        self.cap = share * total
        self.cap_int = int(math.floor(self.cap + 1e-9)) if limit is not None else int(
            self.d_int.sum())
        s = mid.scenario.settings
        self.margin = s.strategy.margin
        self.response = s.response
        self.potential = units["potential"].to_numpy(float)
        self.workload = units["workload"].to_numpy(float)
        econ = economics(mid.scenario)
        rep_terr = np.zeros(len(econ.rep_hours), dtype=np.int64)
        for t, members in enumerate(self.staffing.reps):
            rep_terr[members] = t
        self.hours = np.bincount(rep_terr, weights=econ.rep_hours,
                                 minlength=len(self.staffing.sites))
        self.contiguity = s.alignment.contiguity
        self.resolves = 0
        self.improved = 0
        self.rng = np.random.default_rng(spec.seed)
        self.transfer_plan = None  # the first whole-map transfer plan, with its bound

    def extra_moves_bound(self) -> int | None:
        """The first transfer plan's proven lower bound on the moves beyond the forced ones
        (units that change owner whatever happens), when counting units and the plan reached
        balance; see :mod:`allocator.transfers` for the kind of plan it covers."""
        plan = self.transfer_plan
        if plan is None or plan.bound is None or plan.slack > 0 or self.measure != "units":
            return None
        # the bound less its flows' tie-break (hundredths of a move at most): whole moves
        return int(math.ceil(plan.bound - 0.05))

    # -- measures of an assignment ------------------------------------------------------------
    def moved(self, assignment: np.ndarray) -> np.ndarray:
        return assignment != self.mid.owner

    def disruption(self, assignment: np.ndarray) -> float:
        return float(self.d[self.moved(assignment)].sum())

    def disruption_int(self, assignment: np.ndarray) -> int:
        return int(self.d_int[self.moved(assignment)].sum())

    def contribution(self, assignment: np.ndarray) -> float:
        """Margin on expected sales less travel (people cost is fixed), as :func:`make_plan`
        evaluates it: each territory's hours spread over its units by water-filling."""
        effort = spread_effort(self.potential, self.workload, self.hours, assignment,
                               self.response)
        sales = unit_sales(self.potential, self.workload, effort, self.response)
        travel = self.problem.cost(np.arange(self.problem.n), self.staffing.sites[assignment])
        return float(self.margin * sales.sum() - travel.sum())

    def objective(self, assignment: np.ndarray) -> float:
        price = 0.0 if not self.weight else self.weight * float(
            self.value[self.moved(assignment)].sum())
        return self.contribution(assignment) - price

    def violation(self, assignment: np.ndarray) -> float:
        return LocalSearch(self.problem, self.staffing, assignment, self.contiguity).violation()

    def outcome(self, assignment: np.ndarray, termination: str = "search_complete") -> Outcome:
        return Outcome(assignment.copy(), self.violation(assignment), self.disruption(assignment),
                       self.objective(assignment), self.resolves, self.improved, termination)

    def time_left(self) -> float:
        return self.deadline - clock.now()

    @property
    def small(self) -> bool:
        return self.problem.n * len(self.staffing.sites) <= self.spec.exact_max_pairs

    # -- phases -------------------------------------------------------------------------------
    def repair(self, assignment: np.ndarray) -> np.ndarray:
        """Restore balance with the least disruption.

        Small instances: the whole model. Large ones: two repairs from the same start, and
        the one closer to balance, then with less disruption, is kept:

        - planned transfers (:mod:`allocator.transfers`): the least-disruption transfers
          between adjacent territories over the whole map, made with border-unit moves; this
          finds the few territories with room that serve many in need (a departure raises the
          mean, so territories at the floor of the band fall below it all over the map);
        - ejection chains (:mod:`allocator.ejection`): border units passed along paths of
          territories to one with room, cheapest chain first; better where one territory must
          shed much (a rep leaves a territory shared with another).

        Any territory still out of balance then gets exact re-solves of its neighbourhood,
        growing a ring each time one fails. Only if neither repair makes progress at all does
        the least-disruption LP over the whole map plan the moves for exact re-solves of the
        territories it links.
        """
        T = len(self.staffing.sites)
        if self.small:
            trial = self.resolve(assignment, list(range(T)), stage="balance")
            return assignment if trial is None else trial
        started = self.violation(assignment)
        # the transfer plan is a network model whose flows are general integers: HiGHS's
        # LP-based search finds far better plans in seconds than CP-SAT (demo, one departure,
        # 12 s each: 65 against 105 planned moves)
        transfers = TransferRepair(self.problem, self.staffing, assignment, self.mid.owner,
                                   self.d_int, self.cap_int, PLAN_SOLVER,
                                   contiguity=self.contiguity, seed=self.spec.seed,
                                   threads=self.spec.threads,
                                   plan_seconds=max(1.0, min(20.0, 0.25 * self.time_left())))
        transfers.repair(deadline=clock.now() + max(1.0, 0.35 * self.time_left()))
        first = transfers.plans[0] if transfers.plans else None
        self.transfer_plan = first
        self.say("planned transfers: " + (
            f"{first.planned_moves} paid move(s) planned ({first.status}"
            + (f", short of balance by {first.slack:.3g} x the mean" if first.slack > 0 else
               f", no plan of this kind needs fewer than {self.extra_moves_bound()}"
               if self.extra_moves_bound() is not None else "")
            + f"), {len(transfers.plans)} round(s)" if first is not None else "no plan")
            + f"; balance violation {started:.3g} -> {transfers.violation():.3g}, "
            f"{int(self.moved(transfers.assignment).sum())} unit(s) moved")
        chains = ChainRepair(self.problem, self.staffing, assignment, self.mid.owner,
                             self.d_int, self.cap_int, self.contiguity)
        chains.repair(deadline=clock.now() + max(1.0, 0.3 * self.time_left()))
        returned = chains.return_home()
        self.say(f"ejection chains: {chains.chains} chain(s) of {chains.hops} move(s), "
                 f"{returned} unit(s) back home; balance violation {started:.3g} -> "
                 f"{chains.violation():.3g}, {int(self.moved(chains.assignment).sum())} unit(s) "
                 "moved")
        # keep the better of the two: closer to balance, then fewer moves
        best = min((transfers, chains), key=lambda r: (round(r.violation(), 9),
                                                       self.disruption_int(r.assignment)))
        planned = None
        if best.violation() < started - 1e-9:
            assignment = best.assignment.copy()
            self.say("kept the " + ("transfer repair" if best is transfers
                                    else "ejection chains"))
        else:
            planned = self.plan_moves(assignment)
            for group in self._exchange_groups(assignment, planned):
                if self.time_left() < 1.0:
                    break
                trial = self.resolve(assignment, group, stage="balance", hint=planned)
                if trial is not None:
                    assignment = trial
        failures: dict[int, int] = {}
        while self.time_left() > 1.0:
            search = LocalSearch(self.problem, self.staffing, assignment, self.contiguity)
            if search.violation() <= 1e-9:
                break
            over = self._territory_violation(search)
            seeds = [int(t) for t in np.argsort(-over) if over[t] > 1e-9
                     and failures.get(int(t), 0) < 3]
            if not seeds:
                break
            seed = seeds[0]
            terrs = self._neighbourhood(assignment, seed, rings=1 + failures.get(seed, 0))
            trial = self.resolve(assignment, terrs, stage="balance", hint=planned)
            if trial is not None:
                assignment = trial
            else:
                failures[seed] = failures.get(seed, 0) + 1
        return assignment

    def _exchange_groups(self, assignment: np.ndarray, planned: np.ndarray) -> list[list[int]]:
        """Territories linked by the planned moves (and the ones out of balance), as groups."""
        import networkx as nx

        T = len(self.staffing.sites)
        graph = nx.Graph()
        search = LocalSearch(self.problem, self.staffing, assignment, self.contiguity)
        over = self._territory_violation(search)
        graph.add_nodes_from(int(t) for t in np.flatnonzero(over > 1e-9))
        changed = np.flatnonzero(planned != assignment)
        graph.add_edges_from(zip(assignment[changed].tolist(), planned[changed].tolist(),
                                 strict=True))
        groups = [sorted(c) for c in nx.connected_components(graph)]
        sizes = np.bincount(assignment, minlength=T)
        groups = [g if len(g) > 1 else self._neighbourhood(assignment, g[0]) for g in groups]
        return sorted(groups, key=lambda g: -over[g].sum() - 1e-9 * sizes[g].sum())

    def reduce(self, assignment: np.ndarray, rounds: int = 2) -> np.ndarray:
        """Fewer moves: re-solve the neighbourhoods of moved units, least disruption first."""
        if self.small:
            trial = self.resolve(assignment, list(range(len(self.staffing.sites))),
                                 stage="disruption")
            return assignment if trial is None else trial
        for _ in range(rounds):
            changed = False
            moved = self.moved(assignment) & ~self.mid.forced
            seeds = sorted(set(int(t) for t in assignment[moved]) |
                           set(int(t) for t in self.mid.owner[moved] if t >= 0))
            for seed in seeds:
                if self.time_left() < 1.0:
                    return assignment
                trial = self.resolve(assignment, self._neighbourhood(assignment, seed),
                                     stage="disruption")
                if trial is not None:
                    assignment = trial
                    changed = True
            if not changed:
                break
        return assignment

    def improve(self, assignment: np.ndarray, deadline: float | None = None) -> np.ndarray:
        """Raise the objective within the cap: exact re-solves of random neighbourhoods."""
        stop = min(self.deadline, deadline or self.deadline)
        T = len(self.staffing.sites)
        if self.small:
            # The model prices sales to first order around the current plan, so a plan far
            # from it can look better to the model and be worse: then search closer (a trust
            # region on the units that change), and start afresh from every plan kept.
            radii = [None, 8, 4, 2, 1]
            for _ in range(3):
                k = 0
                while k < len(radii) and clock.now() < stop - 0.5:
                    trial = self.resolve(assignment, list(range(T)), stage="objective",
                                         stop=stop, radius=radii[k])
                    if trial is None:
                        k += 1
                    else:
                        assignment, k = trial, 0
                polished = self.polish(assignment, stop)
                if polished is None:
                    break
                assignment = polished
            return assignment
        order: list[int] = []
        quiet = 0
        while clock.now() < stop - 1.0 and quiet < T:
            if not order:
                order = list(self.rng.permutation(T))
            seed = int(order.pop())
            trial = self.resolve(assignment, self._neighbourhood(assignment, seed),
                                 stage="objective", stop=stop)
            if trial is None:
                quiet += 1
            else:
                assignment = trial
                quiet = 0
        return assignment

    def polish(self, assignment: np.ndarray, stop: float) -> np.ndarray | None:
        """Single-unit moves judged by the exact objective (effort spread again, moves priced
        in), best first, within balance, contiguity and the cap: the model's first-order
        pricing can miss a move that pays. The improved plan, or None if no move pays."""
        search = LocalSearch(self.problem, self.staffing, assignment, self.contiguity)
        current = self.objective(search.assignment)
        improved = False
        while clock.now() < stop:
            best, best_value = None, current
            for i in np.flatnonzero(~search.fixed):
                i = int(i)
                here = int(search.assignment[i])
                if not search.connected_without(here, i):
                    continue
                for target in search.boundary_moves(i):
                    search.move(i, target)
                    if (search.violation() <= 1e-9
                            and self.disruption_int(search.assignment) <= self.cap_int):
                        value = self.objective(search.assignment)
                        clock.charge_moves(self.problem.n)  # effort spread over every unit
                        if value > best_value + 1e-9 * max(1.0, abs(best_value)):
                            best, best_value = (i, target), value
                    search.move(i, here)
            if best is None:
                swap = self._best_swap(search, current, stop)
                if swap is None:
                    break
                (i, t), (j, u), current = swap
                search.move(i, t)
                search.move(j, u)
                improved = True
                continue
            search.move(*best)
            current = best_value
            improved = True
        if improved:
            self.say(f"  single moves by the exact objective: {current:,.0f}")
        return search.assignment.copy() if improved else None

    def _best_swap(self, search: LocalSearch, current: float, stop: float):
        """The best exchange of two units across a border by the exact objective, or None.

        Where every single move breaks balance (territories at their bounds), two units that
        trade places leave the loads nearly as they were: the polish's way out of a plan that
        no single move improves."""
        best, best_value = None, current
        for i in np.flatnonzero(~search.fixed):
            if clock.now() >= stop:
                break
            i = int(i)
            t = int(search.assignment[i])
            for u in search.boundary_moves(i):
                partners = [k for k in sorted(search.members[u]) if k > i  # once per pair
                            and not search.fixed[k]
                            and any(search.assignment[v] == t for v in self.problem.adjacency[k])]
                for j in partners:
                    search.move(i, u)
                    search.move(j, t)
                    if (search.violation() <= 1e-9
                            and self.disruption_int(search.assignment) <= self.cap_int
                            and (not self.contiguity or (len(search.components(t)) == 1
                                                         and len(search.components(u)) == 1))):
                        value = self.objective(search.assignment)
                        clock.charge_moves(self.problem.n)
                        if value > best_value + 1e-9 * max(1.0, abs(best_value)):
                            best, best_value = ((i, u), (j, t)), value
                    search.move(j, u)
                    search.move(i, t)
        return None if best is None else (*best, best_value)

    # -- pieces -------------------------------------------------------------------------------
    def _territory_violation(self, search: LocalSearch) -> np.ndarray:
        over = np.maximum(search.load - search.upper, 0) + np.maximum(search.lower - search.load, 0)
        return (over / search.scale).sum(axis=1)

    def _neighbourhood(self, assignment: np.ndarray, seed: int, rings: int = 1,
                       max_units: int = 320, max_territories: int = 8) -> list[int]:
        T = len(self.staffing.sites)
        graph = territory_graph(self.problem, assignment, T)
        sizes = np.bincount(assignment, minlength=T)
        chosen = [seed]
        frontier = [seed]
        total = int(sizes[seed])
        for _ in range(rings):
            ring = sorted({u for t in frontier for u in graph[t]} - set(chosen),
                          key=lambda u: sizes[u])
            frontier = []
            for u in ring:
                if len(chosen) >= max_territories * rings or total + sizes[u] > max_units * rings:
                    break
                chosen.append(int(u))
                frontier.append(int(u))
                total += int(sizes[u])
        return sorted(chosen)

    def plan_moves(self, assignment: np.ndarray, hops: int = 3) -> np.ndarray:
        """Plan the moves balance needs over the whole map at once: the LP of least disruption.

        Each unit may stay or join a territory within ``hops`` steps of it, so that chains of
        moves (a territory passing units on to make room) are seen together. Columns: pairs
        ``x_it`` costing ``d_i`` when ``t`` is not the unit's owner (plus a small travel
        tie-break), and elastic balance slack; rows: each unit once, balance, the cap. The
        solution is rounded (each unit to its largest share) and serves as the plan and the
        hint of the exact re-solves, which restore contiguity and the exact balance.
        """
        from scipy import sparse

        from allocator.solvers import solve_lp

        problem, staffing = self.problem, self.staffing
        n, T = problem.n, len(staffing.sites)
        M = problem.measures.shape[1]
        edges = problem.scenario.edges
        adjacency = sparse.coo_matrix((np.ones(2 * len(edges)), (
            np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]]))),
            shape=(n, n)).tocsr() + sparse.identity(n, format="csr")
        member = sparse.csr_matrix((np.ones(n), (np.arange(n), assignment)), shape=(n, T))
        reach = member
        for _ in range(hops):
            reach = adjacency @ reach
        reach = reach.tocoo()
        units, terr = reach.row.astype(np.int64), reach.col.astype(np.int64)
        owner = self.mid.owner
        extra = np.flatnonzero(owner >= 0)
        units = np.concatenate([units, extra])
        terr = np.concatenate([terr, owner[extra]])
        keep = np.ones(len(units), dtype=bool)
        forced_to = np.full(n, -1)
        forced_to[staffing.sites] = np.arange(T)
        locked = problem.lock_unit >= 0
        rep_terr = {r: t for t, reps in enumerate(staffing.reps) for r in reps}
        forced_to[locked] = [rep_terr[int(r)] for r in problem.lock_unit[locked]]
        keep &= (forced_to[units] < 0) | (forced_to[units] == terr)
        units, terr = units[keep], terr[keep]
        missing = np.flatnonzero(forced_to >= 0)
        units = np.concatenate([units, missing])
        terr = np.concatenate([terr, forced_to[missing]])
        pairs = np.unique(np.column_stack([units, terr]), axis=0)
        units, terr = pairs[:, 0], pairs[:, 1]
        P = len(units)
        moving = (owner[units] >= 0) & (terr != owner[units])
        travel = problem.cost(units, staffing.sites[terr])
        scale_d = max(float(self.d[self.d > 0].min(initial=1.0)), 1e-9)
        tie = 1e-3 * scale_d / max(float(travel.max(initial=0.0)), 1e-9)
        cost = np.where(moving, self.d[units], 0.0) + tie * travel
        lower, upper = problem.bounds(staffing)
        scale = problem.measures.sum(axis=0) / staffing.headcount
        penalty = 1e3 * (float(cost.max(initial=0.0)) + 1.0) * max(1.0, float(n))
        # column-wise entries: unit row, M balance rows, and the cap row where the pair moves
        cap_row = n + T * M
        counts = 1 + M + moving.astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        index = np.empty(starts[-1], dtype=np.int64)
        value = np.empty(starts[-1])
        index[starts[:-1]] = units
        value[starts[:-1]] = 1.0
        for m in range(M):
            index[starts[:-1] + 1 + m] = n + terr * M + m
            value[starts[:-1] + 1 + m] = problem.measures[units, m] / scale[m]
        at = starts[:-1][moving] + 1 + M
        index[at] = cap_row
        value[at] = self.d_int[units[moving]]
        slack_rows = n + np.arange(T * M)
        index = np.concatenate([index, slack_rows, slack_rows])
        value = np.concatenate([value, -np.ones(T * M), np.ones(T * M)])
        starts = np.concatenate([starts, starts[-1] + np.arange(1, 2 * T * M + 1)])
        forced_cost = int(self.d_int[owner < 0].sum())
        ncols = P + 2 * T * M
        h = solve_lp(np.concatenate([cost, np.full(2 * T * M, penalty)]), np.zeros(ncols),
                     np.concatenate([np.ones(P), np.full(2 * T * M, np.inf)]),
                     np.concatenate([np.ones(n), (lower / scale).ravel(), [-np.inf]]),
                     np.concatenate([np.ones(n), (upper / scale).ravel(),
                                     [float(self.cap_int - forced_cost)]]),
                     starts, index, value,
                     time_limit=max(1.0, min(20.0, 0.3 * self.time_left())))
        x = np.asarray(h.getSolution().col_value)
        if len(x) != ncols:
            return assignment
        share = x[:P]
        best = np.full(n, -1.0)
        result = assignment.copy()
        for u, t, v in zip(units, terr, share, strict=True):
            if v > best[u] + 1e-12:
                best[u] = v
                result[u] = t
        self.say(f"least-disruption LP: slack {float(x[P:].sum()):.3g}, disruption "
                 f"{float((np.where(moving, self.d[units], 0.0) * share).sum()):,.0f}"
                 f", {int(self.moved(result).sum())} unit(s) moved after rounding")
        return result

    def _prices(self, assignment: np.ndarray) -> np.ndarray:
        """Each territory's marginal sales per hour at its current effort spread."""
        spec = self.response
        T = len(self.staffing.sites)
        effort = spread_effort(self.potential, self.workload, self.hours, assignment, spec)
        active = self.workload > 0
        slope = marginal_at_zero(self.potential, self.workload, spec)
        cap = spec.max_coverage * self.workload
        interior = active & (effort > 1e-9) & (effort < cap - 1e-9)
        lam = np.where(interior, slope * np.exp2(-effort / (spec.half * np.where(
            active, self.workload, 1.0))), np.nan)
        prices = np.zeros(T)
        for t in range(T):
            values = lam[(assignment == t) & interior]
            prices[t] = float(np.exp(np.mean(np.log(values)))) if len(values) else (
                0.0 if self.hours[t] > 0 else float(slope[assignment == t].max(initial=0.0)))
        return prices

    def resolve(self, assignment: np.ndarray, terrs: list[int], stage: str,
                stop: float | None = None, hint: np.ndarray | None = None,
                hops: int = 1, radius: int | None = None) -> np.ndarray | None:
        """Re-solve the units of ``terrs`` exactly; the better assignment, or None.

        ``stage``: ``balance`` (out of balance: least slack, then least disruption, then the
        objective), ``disruption`` (balanced: least disruption, then the objective) or
        ``objective`` (within the cap, the best objective; with a weight, moves priced in).
        ``radius`` limits how many units may change territory.
        """
        problem, staffing = self.problem, self.staffing
        stop = self.deadline if stop is None else min(stop, self.deadline)
        if stop - clock.now() < 0.5 or len(terrs) < (1 if self.small else 2):
            return None
        before = (self.violation(assignment), self.disruption_int(assignment),
                  self.objective(assignment))
        hint = assignment if hint is None else np.where(np.isin(hint, terrs), hint, assignment)
        mip = zone_model(problem, staffing, assignment, terrs, hint, self.mid.owner,
                         hops=None if self.small else hops,
                         elastic=1.0 if stage == "balance" else None)
        model = mip.model
        free = np.array(mip.units, dtype=np.int64)
        tset = set(terrs)
        owner = self.mid.owner
        outside = int(self.d_int[self.moved(assignment)].sum() -
                      self.d_int[free][self.moved(assignment)[free]].sum())
        disruption = pulp.LpAffineExpression()
        constant = 0
        for i in free:
            i = int(i)
            h = int(owner[i])
            if h in tset and (i, h) in mip.x:
                disruption += int(self.d_int[i]) * (1 - mip.x[i, h])
            else:
                constant += int(self.d_int[i])
        disruption += constant
        model += disruption <= self.cap_int - outside, "disruption_cap"
        if radius is not None:  # at most ``radius`` units change territory
            model += pulp.lpSum(var for (i, t), var in mip.x.items()
                                if assignment[i] != t) <= radius, "trust_region"
        # hints: the current plan
        # the start is the current plan: connected, and feasible once balance is elastic
        for (i, t), var in mip.x.items():
            var.setInitialValue(1 if assignment[i] == t else 0)
        hint_flows(mip, problem, assignment, {t: int(staffing.sites[t]) for t in terrs})
        slack = [v for v in model.variables() if v.name.startswith("slack_")]
        for v in slack:
            v.setInitialValue(0)  # replaced below where the current plan is out of balance
        if slack:
            self._hint_slack(mip, assignment, terrs, slack)
        # the objective's last stage: travel less each unit's sales value in its territory
        prices = self._prices(assignment)
        pairs = list(mip.x.items())
        pu = np.array([i for (i, _), _ in pairs], dtype=np.int64)
        pt = np.array([t for (_, t), _ in pairs], dtype=np.int64)
        travel = problem.cost(pu, staffing.sites[pt])
        value = self.margin * conjugate(self.potential[pu], self.workload[pu], prices[pt],
                                        self.response)
        score = travel - value
        score = score - np.array([score[pu == i].min() for i in pu])  # same optimum, small numbers
        objective_expr = pulp.lpSum(float(c) * var for c, (_, var) in zip(score, pairs))
        if self.weight:
            price = pulp.LpAffineExpression()
            for i in free:
                i = int(i)
                h = int(owner[i])
                if h in tset and (i, h) in mip.x and self.value[i] > 0:
                    price += float(self.weight * self.value[i]) * (1 - mip.x[i, h])
            objective_expr = objective_expr + price

        def run(limit_to: float) -> bool:
            left = min(stop, self.deadline) - clock.now()
            if left < 0.3:
                return False
            outcome = solve_counted(model, self.spec.name, work=min(limit_to, max(0.3, left - 0.2)),
                                    gap=1e-4, seed=self.spec.seed, threads=self.spec.threads)
            self.resolves += 1
            self.say(f"  re-solve {stage} of {len(terrs)} territories, {len(free)} units, "
                         f"{len(mip.x)} pairs: {outcome.status} in {outcome.runtime_s:.1f} s")
            return outcome.objective is not None

        per_solve = 30.0 if self.small else (20.0 if len(free) > 400 else 10.0)
        if stage == "balance":
            big = float(self.d_int[free].sum() + 1)
            model.setObjective(big * pulp.lpSum(slack) + disruption)
            if not run(per_solve):
                return None
            reached = sum(float(v.varValue or 0.0) for v in slack)
            found = int(round(pulp.value(disruption)))
            for v in slack:  # keep the balance reached, then the least disruption
                v.upBound = float(v.varValue or 0.0) if reached > 1e-6 else 0.0
            if reached <= 1e-6:
                model += disruption <= found, "disruption_found"
                model.setObjective(objective_expr)
                run(per_solve / 2)
        elif stage == "disruption":
            model.setObjective(disruption)
            if not run(per_solve):
                return None
            found = int(round(pulp.value(disruption)))
            model += disruption <= found, "disruption_found"
            model.setObjective(objective_expr)
            run(per_solve / 2)
        else:
            model.setObjective(objective_expr)
            if not run(per_solve if not self.small else max(1.0, stop - clock.now())):
                return None
        trial = assignment.copy()
        for (i, t), var in mip.x.items():
            if var.varValue is not None and var.varValue > 0.5:
                trial[i] = t
        if not self._connected(trial, terrs):
            return None
        after = (self.violation(trial), self.disruption_int(trial), self.objective(trial))
        if after[1] > self.cap_int:
            return None
        if after[0] < before[0] - 1e-9:
            better = True  # closer to balance
        elif after[0] > before[0] + 1e-12:
            better = False
        elif stage == "objective":  # within the cap only the objective counts (moves priced in)
            better = after[2] > before[2] + 1e-9 * max(1.0, abs(before[2]))
        else:  # least disruption first, then the objective
            better = after[1] < before[1] or (
                after[1] == before[1] and after[2] > before[2] + 1e-9 * max(1.0, abs(before[2])))
        self.say(f"  -> balance violation {before[0]:.3g} -> {after[0]:.3g}, disruption "
                 f"{before[1]} -> {after[1]}, {'kept' if better else 'not kept'}")
        if better:
            self.improved += 1
            return trial
        return None

    def _hint_slack(self, mip, assignment: np.ndarray, terrs: list[int], slack) -> None:
        problem, staffing = self.problem, self.staffing
        omega = problem.measures.sum(axis=0) / staffing.headcount
        measures = 1000.0 * problem.measures / omega
        tol = problem.tolerance
        by_name = {v.name: v for v in slack}
        for t in terrs:
            load = measures[assignment == t].sum(axis=0)
            n = staffing.n_reps[t]
            for m in range(problem.measures.shape[1]):
                hi = by_name.get(f"slack_bal_hi_{t}_{m}")
                lo = by_name.get(f"slack_bal_lo_{t}_{m}")
                # whole numbers, rounded up: CP-SAT takes slack as an integer
                if hi is not None:
                    hi.setInitialValue(math.ceil(max(0.0, load[m] - 1000.0 * (1 + tol[m]) * n)
                                                 + 1e-6) if load[m] > 1000.0 * (1 + tol[m]) * n
                                       else 0)
                if lo is not None:
                    lo.setInitialValue(math.ceil(max(0.0, 1000.0 * (1 - tol[m]) * n - load[m])
                                                 + 1e-6) if load[m] < 1000.0 * (1 - tol[m]) * n
                                       else 0)

    def _connected(self, assignment: np.ndarray, terrs: list[int]) -> bool:
        if not self.contiguity:
            return True
        search = LocalSearch(self.problem, self.staffing, assignment, True)
        return all(len(search.components(t)) == 1 for t in terrs)


def zone_model(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
               terrs: list[int], hint: np.ndarray, owner: np.ndarray, hops: int | None,
               elastic: float | None):
    """The alignment of the units of ``terrs`` (the rest fixed), each unit free to stay, go
    back to its owner, or join a territory within ``hops`` steps of it (all of ``terrs`` when
    ``hops`` is None). Built from the constraint families of :mod:`allocator.formulation`
    (assignment, sites, balance, flow contiguity) as :func:`build_subproblem` is, with the
    candidate pairs pruned so that a neighbourhood of many territories stays small; balance
    rows are in thousandths of the mean per rep, with optional elastic slack."""
    from allocator.formulation import (Mip, assignment_constraints, balance_constraints,
                                       contiguity_constraints, site_constraints)

    free = np.flatnonzero(np.isin(assignment, terrs))
    tset = set(int(t) for t in terrs)
    site_unit = {int(t): int(staffing.sites[t]) for t in terrs}
    site_of = {u: t for t, u in site_unit.items()}
    rep_terr = {r: t for t, reps in enumerate(staffing.reps) for r in reps}
    near: dict[int, set[int]] = {}
    if hops is not None:
        for i in free:
            i = int(i)
            seen, layer = {i}, {i}
            for _ in range(hops):
                layer = {int(v) for u in layer for v in problem.adjacency[u]} - seen
                seen |= layer
            near[i] = {int(assignment[v]) for v in seen} | {int(hint[v]) for v in seen}
    pairs_of: dict[int, list[int]] = {}
    for i in free:
        i = int(i)
        if i in site_of:
            pairs_of[i] = [site_of[i]]
        elif problem.lock_unit[i] >= 0:
            pairs_of[i] = [rep_terr[int(problem.lock_unit[i])]]
        elif hops is None:
            pairs_of[i] = sorted(tset)
        else:
            options = {int(assignment[i]), int(hint[i])} | near[i]
            if owner[i] >= 0:
                options.add(int(owner[i]))
            pairs_of[i] = sorted(options & tset)
    model = pulp.LpProblem("reoptimize", pulp.LpMinimize)
    x = {(i, t): pulp.LpVariable(f"x_{i}_{t}", cat="Binary")
         for i, options in pairs_of.items() for t in options}
    mip = Mip(model, x, sorted(tset), [int(i) for i in free])
    n_reps = {t: int(staffing.n_reps[t]) for t in tset}
    assignment_constraints(mip, pairs_of)
    site_constraints(mip, site_unit, {t: 1 for t in tset})
    omega = problem.measures.sum(axis=0) / staffing.headcount
    measures = 1000.0 * problem.measures / omega
    balance_constraints(mip, pairs_of, measures, 1000.0 * (1 - problem.tolerance),
                        1000.0 * (1 + problem.tolerance), n_reps)
    if problem.scenario.settings.alignment.contiguity:
        contiguity_constraints(mip, pairs_of, problem.adjacency, site_unit)
    if elastic is not None:
        for name, row in model.constraints.items():
            if name.startswith("bal_"):
                t = int(name.split("_")[2])
                extra = pulp.LpVariable(f"slack_{name}", 0, 1000.0 * (n_reps[t] + 1))
                row.addInPlace(-extra if name.startswith("bal_hi") else extra)
    return mip


# --- remaining-month quotas ---------------------------------------------------------------------

def as_of_month(as_of: date, year: int) -> int:
    """The last month complete on ``as_of`` (0 before the end of January)."""
    if as_of.year != year:
        raise InputError(f"--as-of must lie in the plan year {year}", column="--as-of",
                         value=as_of.isoformat())
    following = date(as_of.year + (as_of.month == 12), as_of.month % 12 + 1, 1)
    last_day = (following - date.resolution).day
    return as_of.month if as_of.day == last_day else as_of.month - 1


def activity(start_month: int, ramp: tuple[int, float]) -> np.ndarray:
    """A rep's share of full selling activity in each month (hires start and ramp up)."""
    act = np.ones(12)
    act[: start_month - 1] = 0.0
    end = min(12, start_month - 1 + ramp[0])
    act[start_month - 1:end] = ramp[1]
    return act


def remaining_quotas(mid: MidYear, plan: Plan, done: int, annual_cents: int,
                     sold_cents: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Quotas for months ``done+1..12`` that add up to the annual quota total less what was
    sold, to the cent, spread in proportion to each rep's expected sales in those months so
    that every rep's rest of the year is equally attainable.

    A rep's expected sales in the remaining months are their share of the territory's expected
    sales (by hours, as in the plan) times the share of the year's seasonal activity still
    ahead of them; a hire's activity follows their start month and ramp. A unit that changes
    territory carries its expected sales, hence its pro-rated quota, to its new rep.
    Returns the monthly quota table, the per-rep detail, and the remaining target in cents.
    """
    season = np.array(mid.scenario.settings.quotas.seasonality, dtype=float)
    reps = plan.reps
    ahead = np.zeros(len(reps))
    weights = []
    for k, rep in enumerate(reps.itertuples()):
        act = activity(mid.rep_start[rep.rep_id], mid.rep_ramp[rep.rep_id]) * season
        w = act.copy()
        w[:done] = 0.0
        weights.append(w)
        ahead[k] = w.sum() / act.sum() if act.sum() > 0 else 0.0
    expected_left = reps["expected_sales"].to_numpy(float) * ahead
    remaining = annual_cents - sold_cents
    if remaining > 0:
        cents = split_cents(remaining, expected_left)
    else:  # the target is already met: nothing is left to ask for
        cents = np.zeros(len(reps), dtype=np.int64)
    rows = []
    for k, rep in enumerate(reps.itertuples()):
        w = weights[k]
        if w.sum() <= 0:
            w = np.where(np.arange(12) >= done, season, 0.0)
        month = split_cents(int(cents[k]), w) if cents[k] else np.zeros(12, dtype=np.int64)
        rows.append([rep.rep_id, rep.territory_id, *(month / 100.0), cents[k] / 100.0])
    table = pd.DataFrame(rows, columns=["rep_id", "territory_id", *MONTHS, "annual"])
    detail = pd.DataFrame({
        "rep_id": reps["rep_id"], "kind": [mid.rep_kind[r] for r in reps["rep_id"]],
        "territory_id": reps["territory_id"],
        "start_month": [mid.rep_start[r] for r in reps["rep_id"]],
        "expected_sales_remaining": expected_left,
        "quota_remaining": cents / 100.0,
        "attainability": np.divide(cents / 100.0, expected_left,
                                   out=np.full(len(reps), np.nan), where=expected_left > 0),
    })
    return table, detail, remaining


# --- the whole operation ------------------------------------------------------------------------

@dataclass
class ReoptimizeResult:
    plan: Plan
    parent: object  # RunRecord
    mid: MidYear
    outcome: Outcome
    moves: pd.DataFrame
    disruption: dict
    quotas: pd.DataFrame
    quota_detail: pd.DataFrame
    quota_summary: dict
    tradeoff: pd.DataFrame | None
    people: PeopleChanges
    runtime_s: float
    solver: str
    seed: int
    log: list[str]
    objective_before: float | None


def reoptimize(run_path: str | Path, actuals_path: str | Path, as_of: date, *,
               people: PeopleChanges | None = None, locks: Locks | None = None,
               max_moved: DisruptionLimit | None = None, disruption_weight: float | None = None,
               tradeoff: int | None = None, recalibrated: str | Path | None = None,
               solver: str | None = None, time_limit: float | None = None,
               seed: int | None = None, threads: int | None = None,
               progress: Progress | None = None) -> ReoptimizeResult:
    """Re-optimise the run at ``run_path`` mid-year; see the module docstring for the model.

    With ``solver.deterministic`` (the default) every decision of the search reads the work
    clock (:mod:`allocator.clock`), never the wall: the same inputs and seed give the same
    moves on a busy and an idle machine; the wall clock is a safety stop only.
    """
    # the kind of clock and its limit are set once the parent's solver settings are read
    with clock.running(clock.SearchClock(True, float("inf"))) as search:
        result = _reoptimize(run_path, actuals_path, as_of, people=people, locks=locks,
                             max_moved=max_moved, disruption_weight=disruption_weight,
                             tradeoff=tradeoff, recalibrated=recalibrated, solver=solver,
                             time_limit=time_limit, seed=seed, threads=threads,
                             progress=progress)
    result.runtime_s = search.wall()
    if search.safety_stopped:  # the machine ran far slower than the work clock assumes
        result.outcome.termination = "wall_clock_safety"
    return result


def _reoptimize(run_path: str | Path, actuals_path: str | Path, as_of: date, *,
                people: PeopleChanges | None, locks: Locks | None,
                max_moved: DisruptionLimit | None, disruption_weight: float | None,
                tradeoff: int | None, recalibrated: str | Path | None, solver: str | None,
                time_limit: float | None, seed: int | None, threads: int | None,
                progress: Progress | None) -> ReoptimizeResult:
    from allocator.actuals import read_actuals
    from allocator.runs import read_run

    log: list[str] = []
    say = progress or (lambda message: None)

    def note(message: str) -> None:
        log.append(message)
        say(message)

    if disruption_weight is not None and (not math.isfinite(disruption_weight)
                                          or disruption_weight < 0):
        raise InputError("must be a finite number >= 0", column="--disruption-weight",
                         value=disruption_weight)
    if tradeoff is not None and tradeoff < 2:
        raise InputError("a trade-off curve needs at least 2 points", column="--tradeoff",
                         value=tradeoff)
    parent = read_run(run_path)
    scenario = parent.load_scenario()
    overrides = {k: v for k, v in dict(name=solver, time_limit=time_limit, seed=seed,
                                        threads=threads).items() if v is not None}
    if overrides:
        scenario = scenario.with_settings(solver=overrides)
    spec = scenario.settings.solver
    search_clock = clock.current()
    search_clock.deterministic, search_clock.limit = spec.deterministic, spec.time_limit
    started = clock.now()
    deadline = started + spec.time_limit
    actuals = read_actuals(actuals_path, parent, scenario)
    done = as_of_month(as_of, scenario.settings.year)
    if actuals.through != done:
        raise InputError(
            f"the actuals run through {actuals.through_label()}, but --as-of "
            f"{as_of.isoformat()} closes the months through "
            f"{scenario.settings.year}-{done:02d}: give the as-of date of the last month with "
            "actuals (e.g. its last day)", file=str(actuals_path), column="month")
    potential = None
    if recalibrated is not None:
        response = _recalibrated_response(recalibrated)
        if response is not None:  # the evaluation's response_recalibrated.yaml
            scenario = scenario.with_settings(response=response)
            note(f"sales response recalibrated from {recalibrated}: {response}")
        else:
            potential = recalibrated_potential(recalibrated, scenario)
            note(f"potential recalibrated from {recalibrated}")
    mid = freeze(parent, scenario, people or PeopleChanges(), locks, potential)
    for line in mid.notes:
        note(line)
    check_budget(mid, least_travel(mid))
    search = Reoptimizer(mid, max_moved, disruption_weight, spec, deadline, note)
    forced = float(search.d[mid.forced].sum())
    if max_moved is not None and search.d_int[mid.forced].sum() > search.cap_int:
        raise InfeasibleError(
            "the cap on moved units cannot be met",
            diagnosis=[f"the people changes alone move {mid.forced.sum()} unit(s) "
                       f"({_fmt(forced, search.measure)}, {forced / search.total:.2%} of the "
                       f"{search.measure}); --max-moved allows {max_moved.share:.2%}"])
    if tradeoff and not search.small:
        # on a large map the repair and its reductions would use all the time: keep a share
        # for the sweep, so that its points above the least disruption get searched at all
        search.deadline = deadline - TRADEOFF_SHARE_OF_TIME * spec.time_limit
    assignment = mid.start.copy()
    initial_violation = search.violation(assignment)
    note(f"start: {int(mid.forced.sum())} unit(s) must change owner; balance violation "
         f"{initial_violation:.3g}")
    if initial_violation > 1e-9:
        assignment = search.repair(assignment)
    violation = search.violation(assignment)
    if violation > 1e-9:
        raise InfeasibleError("balance cannot be restored" + (
            " within the cap" if max_moved is not None else "") + " with the people given",
            diagnosis=_diagnose(search, assignment, max_moved))
    if disruption_weight is None:
        if search.moved(assignment).sum() > mid.forced.sum():
            assignment = search.reduce(assignment)
    else:
        assignment = search.improve(assignment)
    termination = "time_limit" if search.time_left() <= 0.5 else "search_complete"
    search.deadline = deadline
    outcome = search.outcome(assignment, termination)
    note(f"plan: {int(search.moved(assignment).sum())} unit(s) moved, disruption "
         f"{_fmt(outcome.disruption, search.measure)}, {search.resolves} exact re-solve(s)")

    curve = None
    if tradeoff:
        curve = tradeoff_curve(search, assignment, tradeoff, max_moved, note)

    plan = make_plan(mid.scenario, mid.problem, mid.staffing, assignment)
    check_budget(mid, float(plan.costs["travel"]), "this plan's travel")
    assert_plan(plan)
    if curve is not None:  # the curve in the plan's own objective: people cost is fixed
        curve["objective"] += plan.objective() - search.contribution(assignment)
    _label_reps(plan, mid)
    if search.disruption_int(assignment) > search.cap_int:  # never written: a bug if reached
        raise SpecificationError("internal: the plan exceeds the disruption cap")

    sold = actuals.table.loc[actuals.table["month"] <= done, "sales"]
    sold_cents = int(round(float(sold.sum()) * 100))
    annual_cents = int(sum(round(float(v) * 100) for v in parent.quotas["annual"]))
    quotas, detail, remaining = remaining_quotas(mid, plan, done, annual_cents, sold_cents)
    if remaining > 0 and int(round(quotas["annual"].sum() * 100)) != remaining:
        raise SpecificationError("internal: remaining quotas do not add up to the target")
    unit_ytd = None
    if actuals.level == "unit":
        ytd = actuals.table[actuals.table["month"] <= done].groupby("id")["sales"].sum()
        unit_ytd = ytd.reindex(mid.scenario.units["unit_id"]).fillna(0.0).to_numpy(float)
    moves = moves_table(mid, plan, search, unit_ytd)
    detail = _quota_moves(detail, moves, plan, quotas, mid)
    plan.quotas = quotas
    _set_plan_quotas(plan, detail)
    disruption = disruption_summary(mid, plan, search, moves, max_moved, disruption_weight)
    summary = {
        "as_of": as_of.isoformat(), "months_done": done,
        "months_left": [f"{scenario.settings.year}-{m:02d}" for m in range(done + 1, 13)],
        "annual_quota_total": annual_cents / 100.0, "sold_to_date": sold_cents / 100.0,
        "remaining_target": remaining / 100.0,
        "remaining_quota_total": float(quotas["annual"].sum().round(2)),
        "actuals": str(actuals_path), "actuals_level": actuals.level,
        "actuals_synthetic": bool(actuals.synthetic),
        "note": ("quota columns of this run hold the quota for the remaining months; each rep's "
                 "share follows their expected sales in those months (equal attainability)"),
    }
    if remaining <= 0:
        summary["note"] = "the annual quota total is already sold: no quota is left to set"
    return ReoptimizeResult(plan, parent, mid, outcome, moves, disruption, quotas, detail,
                            summary, curve, people or PeopleChanges(), clock.now() - started, spec.name, spec.seed,
                            log, parent.result.get("objective"))


def least_travel(mid: MidYear) -> float:
    """A lower bound on travel: every unit served from the nearest base."""
    problem, sites = mid.problem, mid.staffing.sites
    units = np.arange(problem.n)
    nearest = np.full(problem.n, np.inf)
    for site in sites:
        nearest = np.minimum(nearest, problem.cost(units, np.full(problem.n, site)))
    return float(nearest.sum())


def check_budget(mid: MidYear, travel: float, travel_label: str = "travel at least") -> None:
    """The people of the rest of the year, with managers and ``travel``, must fit the parent's
    sales-expense budget; if not, say what the new hires cost and what the budget leaves them
    (an infeasible scenario, exit 3), rather than fail the plan check later."""
    settings = mid.scenario.settings
    budget = settings.strategy.budget
    if budget is None:
        return
    reps = mid.scenario.reps
    econ = economics(mid.scenario)
    new_hire = np.array([r not in mid.rep_parent_territory and mid.rep_kind[r] == "hire"
                         for r in reps["rep_id"]], dtype=bool)
    cost = reps["annual_cost"].to_numpy(float)
    managers = econ.managers(len(reps)) * econ.manager_cost
    others = float(cost[~new_hire].sum())
    hires = float(cost[new_hire].sum())
    total = others + hires + managers + travel
    if total <= budget * (1 + 1e-9):
        return
    currency = settings.currency
    left = budget - others - managers - travel
    detail = [f"budget {budget:,.0f} {currency}; the other {int((~new_hire).sum())} rep(s) cost "
              f"{others:,.0f}, managers {managers:,.0f}, {travel_label} {travel:,.0f}"]
    if new_hire.any():
        names = ", ".join(reps["rep_id"][new_hire])
        raise InfeasibleError(
            f"the hires cost {hires:,.0f} {currency}; the budget leaves {max(left, 0.0):,.0f} "
            f"for them ({names})",
            diagnosis=detail + ["hire later in the year, fewer or cheaper people, or raise "
                                "strategy.budget in the scenario"])
    raise InfeasibleError(f"the people of the rest of the year cost {total:,.0f} {currency}, "
                          f"over the budget {budget:,.0f}", diagnosis=detail)


def _fmt(value: float, measure: str) -> str:
    return f"{value:,.0f} unit(s)" if measure == "units" else f"{value:,.0f} of last year's sales"


def _diagnose(search: Reoptimizer, assignment: np.ndarray, limit) -> list[str]:
    local = LocalSearch(search.problem, search.staffing, assignment, search.contiguity)
    over = search._territory_violation(local)
    lines = []
    ids = search.mid.scenario.units["unit_id"].to_numpy()
    for t in np.argsort(-over)[:5]:
        if over[t] <= 1e-9:
            break
        index = local.load[t] / (local.scale * search.staffing.n_reps[t])
        members = assignment == t
        locked = bool((search.problem.lock_unit[members] >= 0).all())
        lines.append(f"territory based at {ids[search.staffing.sites[t]]}: workload per rep "
                     f"{index[0]:.3f} x the mean, allowed {1 - search.problem.tolerance[0]:.3f}-"
                     f"{1 + search.problem.tolerance[0]:.3f}" + (
                         " (every unit locked, e.g. a vacancy's territory: it cannot change)"
                         if locked else ""))
    used = search.disruption(assignment)
    if limit is not None:
        lines.append(f"moves so far use {_fmt(used, search.measure)} of the cap "
                     f"{_fmt(search.cap, search.measure)} ({limit.label()}); a larger "
                     "--max-moved, a vacancy instead of a departure, or a hire may restore "
                     "balance")
    else:
        lines.append("the search ran out of time or neighbourhoods; raise --time-limit")
    return lines


def _label_reps(plan: Plan, mid: MidYear) -> None:
    """After the check: mark hires and vacancies as such in the plan's rep table."""
    plan.reps["kind"] = [mid.rep_kind[r] for r in plan.reps["rep_id"]]
    plan.reps["start_month"] = [mid.rep_start[r] for r in plan.reps["rep_id"]]


def moves_table(mid: MidYear, plan: Plan, search: Reoptimizer,
                ytd: np.ndarray | None) -> pd.DataFrame:
    moved = np.flatnonzero(search.moved(plan.assignment))
    units = mid.scenario.units
    return pd.DataFrame({
        "unit_id": units["unit_id"].to_numpy()[moved],
        "name": units["name"].to_numpy()[moved],
        "from_territory": mid.parent_territory[moved],
        "from_rep": mid.parent_rep[moved],
        "to_territory": plan.units["territory_id"].to_numpy()[moved],
        "to_rep": plan.units["rep_id"].to_numpy()[moved],
        "potential": units["potential"].to_numpy(float)[moved],
        "last_year_sales": units["last_year_sales"].to_numpy(float)[moved],
        "ytd_sales": (ytd[moved] if ytd is not None else np.full(len(moved), np.nan)),
        "forced": mid.forced[moved],
    })


def _quota_moves(detail: pd.DataFrame, moves: pd.DataFrame, plan: Plan, quotas: pd.DataFrame,
                 mid: MidYear) -> pd.DataFrame:
    """Units gained and lost by each rep, and the pro-rated remaining quota those units carry
    (a unit's share of its new territory's quota, by expected sales; a rep's part by hours)."""
    quota_t = quotas.groupby("territory_id")["annual"].sum()
    table = plan.units.set_index("unit_id")
    sales_t = table.groupby("territory_id")["expected_sales"].sum()
    unit_quota = (table["expected_sales"] / table["territory_id"].map(sales_t)
                  * table["territory_id"].map(quota_t)).fillna(0.0)
    reps = plan.reps.set_index("rep_id")
    share = reps["hours"] / reps.groupby("territory_id")["hours"].transform("sum")
    rows = []
    for rep in detail.itertuples():
        gained = moves.loc[moves["to_territory"] == rep.territory_id, "unit_id"]
        origin = mid.rep_parent_territory.get(rep.rep_id)
        lost = moves.loc[moves["from_territory"] == origin, "unit_id"] if origin else gained[:0]
        rows.append((len(gained), float(unit_quota.loc[gained].sum() * share[rep.rep_id]),
                     len(lost), float(unit_quota.loc[lost].sum() * share[rep.rep_id])))
    extra = pd.DataFrame(rows, columns=["units_gained", "quota_of_units_gained", "units_lost",
                                        "quota_of_units_lost"])
    return pd.concat([detail.reset_index(drop=True), extra], axis=1)


def _set_plan_quotas(plan: Plan, detail: pd.DataFrame) -> None:
    """The written rep and territory tables carry the remaining-month quotas."""
    quota = detail.set_index("rep_id")["quota_remaining"]
    expected = detail.set_index("rep_id")["expected_sales_remaining"]
    plan.reps["quota"] = plan.reps["rep_id"].map(quota).to_numpy()
    plan.reps["attainability"] = (plan.reps["quota"] / plan.reps["rep_id"].map(expected)).to_numpy()
    by_territory = plan.reps.groupby("territory_id")["quota"].sum()
    left = plan.reps.groupby("territory_id")["rep_id"].apply(lambda r: expected[r].sum())
    plan.territories["quota"] = plan.territories["territory_id"].map(by_territory).to_numpy()
    plan.territories["attainability"] = (plan.territories["quota"] /
                                         plan.territories["territory_id"].map(left)).to_numpy()


def disruption_summary(mid: MidYear, plan: Plan, search: Reoptimizer, moves: pd.DataFrame,
                       limit: DisruptionLimit | None, weight: float | None) -> dict:
    units = mid.scenario.units
    n = len(units)
    total_value = float(units["last_year_sales"].sum())
    value = float(moves["last_year_sales"].sum())
    affected = set()
    for frm, to in zip(moves["from_territory"], moves["to_territory"], strict=True):
        affected.add(("parent", frm))
        affected.add(("child", to))
    people = set()
    reps = plan.reps
    parent_reps = mid_parent_reps(mid)
    for side, tid in affected:
        if side == "child":
            people |= set(reps.loc[reps["territory_id"] == tid, "rep_id"])
        else:
            people |= parent_reps.get(tid, set())
    ytd = moves["ytd_sales"]
    bound = search.extra_moves_bound()
    return {
        "units_moved": int(len(moves)),
        "extra_moves": int(len(moves) - moves["forced"].sum()),
        "extra_moves_lower_bound": bound,
        "extra_moves_lower_bound_scope": None if bound is None else (
            "no plan of whole units passed across territory borders (up to "
            f"{search.transfer_plan.depth} units in from a border, each territory kept "
            "connected, "
            "balance to a thousandth of the mean) needs fewer moves beyond the forced ones; "
            "the transfer plan's dual bound"),
        "units_moved_share": len(moves) / n,
        "value_moved": value,
        "value_moved_share": value / total_value if total_value else 0.0,
        "ytd_sales_moved": None if ytd.isna().all() else float(ytd.sum()),
        "reps_affected": len(people),
        "forced_units": int(moves["forced"].sum()),
        "forced_value": float(moves.loc[moves["forced"], "last_year_sales"].sum()),
        "measure": search.measure,
        "cap": None if limit is None else {"measure": limit.measure, "share": limit.share,
                                           "limit": search.cap,
                                           "used": search.disruption(plan.assignment)},
        "disruption_weight": weight,
        "mode": "least disruption" if weight is None else "objective less weighted disruption",
    }


def mid_parent_reps(mid: MidYear) -> dict[str, set[str]]:
    frame = pd.DataFrame({"t": mid.parent_territory, "r": mid.parent_rep})
    return {t: set(g["r"]) for t, g in frame.groupby("t")}


def _recalibrated_response(path: str | Path) -> dict | None:
    """The ``response`` section of an evaluation's ``response_recalibrated.yaml``, if it is one."""
    from allocator import read

    file = Path(path)
    if file.suffix.lower() not in (".yaml", ".yml"):
        return None
    data = read.read_yaml(file)
    section = data.get("response")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise InputError("the response section must be a mapping", file=str(file),
                         column="response", value=section)
    return dict(section)


def recalibrated_potential(path: str | Path, scenario: Scenario) -> np.ndarray:
    """Unit potential updated by an evaluation: a table with ``unit_id`` and ``potential``
    (every unit), or a JSON/YAML mapping with ``potential_factor`` (one factor for all units)
    or ``potential_factors`` (by region)."""
    from allocator import read

    file = Path(path)
    units = scenario.units
    base = units["potential"].to_numpy(float)
    if file.suffix.lower() in (".json", ".yaml", ".yml"):
        data = json.loads(file.read_text()) if file.suffix.lower() == ".json" else \
            read.read_yaml(file)
        if "potential_factor" in data:
            factor = float(data["potential_factor"])
            if not factor > 0:
                raise InputError("must be > 0", file=str(file), column="potential_factor",
                                 value=factor)
            return base * factor
        if "potential_factors" in data:
            factors = data["potential_factors"]
            unknown = set(factors) - set(units["region"])
            if unknown:
                raise InputError("unknown region", file=str(file), column="potential_factors",
                                 value=sorted(unknown)[0])
            return base * units["region"].map(lambda r: float(factors.get(r, 1.0))).to_numpy()
        raise InputError("needs potential_factor or potential_factors", file=str(file))
    frame = read.read_table(file)
    read.require_columns(frame, ["unit_id", "potential"], str(file))
    ids = read.text_column(frame, "unit_id", str(file))
    values = read.number_column(frame, "potential", str(file), minimum=0.0)
    lookup = dict(zip(ids, values, strict=True))
    missing = [u for u in units["unit_id"] if u not in lookup]
    if missing:
        raise InputError("unit has no recalibrated potential", file=str(file), column="unit_id",
                         value=missing[0])
    return np.array([lookup[u] for u in units["unit_id"]], dtype=float)


# --- the trade-off curve -------------------------------------------------------------------------

def tradeoff_curve(search: Reoptimizer, start: np.ndarray, points: int,
                   limit: DisruptionLimit | None, note: Progress) -> pd.DataFrame:
    """Objective against disruption for ``points`` caps (epsilon constraint).

    The first cap is the disruption of ``start`` (the least found), the last the ``--max-moved``
    cap (10 % without it). Each point starts from the previous point's plan, which is feasible
    for the larger cap, and keeps it unless a re-solve is better: the curve never goes down.
    """
    weight, cap_int, cap = search.weight, search.cap_int, search.cap
    search.weight = 0.0  # the curve maximises the objective alone, cap by cap
    low = search.disruption_int(start)
    top_share = limit.share if limit is not None else DEFAULT_TRADEOFF_SHARE
    high = max(low, int(math.floor(top_share * search.total + 1e-9)))
    caps = np.unique(np.linspace(low, high, points).round().astype(np.int64))
    if len(caps) < points:  # a very small range: repeat the top (still a valid sweep)
        caps = np.concatenate([caps, np.full(points - len(caps), caps[-1])])
    rows = []
    current = start.copy()
    for k, c in enumerate(caps):
        search.cap_int = int(c)
        search.cap = float(c)
        remaining = search.deadline - clock.now()
        until = clock.now() + remaining / max(1, points - k)
        if k > 0:
            current = search.improve(current, deadline=until)
        contribution = search.contribution(current)
        moved = search.moved(current)
        rows.append({"point": k + 1, "cap": float(c), "cap_share": float(c) / search.total,
                     "units_moved": int(moved.sum()),
                     "value_moved": float(search.value[moved].sum()),
                     "disruption": search.disruption(current),
                     "objective": contribution,
                     "assignment": current.copy()})
        note(f"trade-off point {k + 1}/{points}: cap {_fmt(float(c), search.measure)}, "
             f"{int(moved.sum())} unit(s) moved, margin less travel {contribution:,.0f}")
    search.weight, search.cap_int, search.cap = weight, cap_int, cap
    return pd.DataFrame(rows)


def write_tradeoff_chart(curve: pd.DataFrame, measure: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    x = curve["units_moved"] if measure == "units" else curve["value_moved"]
    ax.plot(x, curve["objective"], marker="o", color="#4e79a7")
    for row, xv in zip(curve.itertuples(), x, strict=True):
        ax.annotate(str(row.point), (xv, row.objective), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("units moved" if measure == "units" else "last year's sales moved")
    ax.set_ylabel("objective (contribution, fixed people)")
    ax.set_title("Objective against disruption (each point: best plan within a cap)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- the run folder -----------------------------------------------------------------------------

def write_reoptimized_run(result: ReoptimizeResult, models_dir: str | Path,
                          people_file: str | Path | None = None,
                          locks_file: str | Path | None = None) -> Path:
    """Write the new run folder (atomically, never over an earlier run) and return its path."""
    from allocator.runs import write_run
    from allocator.solve import SolveResult

    plan = result.plan
    solve_result = SolveResult(status="feasible", termination=result.outcome.termination,
                               objective=plan.objective(), bound=None, gap=None,
                               runtime_s=result.runtime_s, solver=result.solver, seed=result.seed,
                               plan=plan, sizing=pd.DataFrame(), binding="people fixed (mid-year)",
                               log=result.log)
    curve = None if result.tradeoff is None else result.tradeoff.drop(columns=["assignment"])

    def write_extra(folder: Path) -> None:
        result.quota_detail.to_csv(folder / "quota_reset.csv", index=False)
        result.moves.to_csv(folder / "moves.csv", index=False)
        if curve is not None:
            curve.to_csv(folder / "tradeoff.csv", index=False)
            write_tradeoff_chart(curve, result.disruption["measure"], folder / "tradeoff.png")
        for name, source in (("people.yaml", people_file), ("locks" + (
                Path(locks_file).suffix if locks_file else ""), locks_file)):
            if source is not None:
                shutil.copyfile(source, folder / name)

    record = {
        "scenario_file": result.parent.result.get("scenario_file"),
        "parent_run": str(Path(result.parent.path).resolve()),
        "parent_run_id": result.parent.run_id,
        "parent_objective": result.objective_before,
        "kind": "reoptimized",
        "disruption": result.disruption,
        "quotas": result.quota_summary,
        "people_changes": {**result.people.as_dict(), **_people_record(result.mid)},
        "tradeoff": None if curve is None else curve.to_dict(orient="records"),
    }
    return write_run(solve_result, models_dir, suffix="-reopt", write_extra=write_extra,
                     record_extra=record)


def _people_record(mid: MidYear) -> dict:
    kinds = mid.rep_kind
    return {"reps": len(kinds),
            "hires": sorted(r for r, k in kinds.items() if k == "hire"),
            "vacancies": sorted(r for r, k in kinds.items() if k == "vacancy")}
