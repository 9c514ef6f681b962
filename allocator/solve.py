"""``solve``: from a scenario to a checked, optimised plan with its status, bound and gap.

The search runs over head counts. For every head count ``N`` the sizing bound ``UB(N)`` (pooled
response, cheapest people) is known at once; head counts are visited best bound first and each
gets a plan:

1. staff it: round the LP relaxation's staffing (on a small map, also that of the best child
   of a branching on the heaviest unit the LP splits, :mod:`allocator.branching`, and keep the
   better plan; on a large map with the time for it, in steps by a dive,
   :mod:`allocator.diving`), or keep the existing reps worth keeping and place the hires
   (weighted k-means on hire sites);
2. align: balanced LP over pruned pairs (HiGHS), rounding, contiguity repair, local search; then
   alternate with a location step that moves hires to the best site of their territory (Hess);
3. improve with the chosen solver (CP-SAT, HiGHS or CBC): the whole integer program when it is
   small, otherwise exact re-solves of a few adjacent territories at a time (LNS), after
   single moves judged on the true sales on a large map (they gain more per second there);
4. bound the head count by its LP relaxation over all pairs and strong links (column and row
   generation, :mod:`allocator.bounds`).

Visiting stops when every head count left has ``UB(N)`` below the best plan (within the gap).
The last part of the time limit bounds the head counts not visited by *ranges* of head counts
(the balance rows relaxed to the range's ends): the Lagrangian of the last LP's duals first, then
LP rounds for the range that decides the reported bound. Both know the geography the sizing
bound ignores. On a large map with ``solver.threads`` of 2 or more the ranges are bounded on the
second core from the start instead (:mod:`allocator.range_worker`), and the planning keeps the
whole limit. On a small map the head count that decides the bound then branches further.
The reported bound is the largest bound over all head counts, so the gap covers the sizing too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from allocator import clock, range_worker
from allocator.alignment import (AlignmentProblem, LocalSearch, align, balance_violation,
                                 choose_reps, ensure_site_capacity, place_hires, staffing_from,
                                 staffing_from_lp)
from allocator.formulation import build_headcount_mip, hint_flows
from allocator.improve import TerritorySales, lns, merge_repair, move_hire_repair, sales_moves
from allocator.solvers import solve_mip
from allocator.bounds import HeadcountLp, headcount_lp_bound
from allocator.branching import HeadcountBranching
from allocator.checker import assert_plan
from allocator.diving import dive_staffing
from allocator.diagnose import check_specification, diagnose_specification
from allocator.exceptions import InfeasibleError, NoSolutionError
from allocator.plan import Plan, make_plan
from allocator.scenario import Scenario
from allocator.settings import SolverSpec
from allocator.sizing import ResponseCurve, economics, response_curve, size_bounds

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SolveResult:
    """Why the search stopped, kept apart from how good the answer is."""

    status: str  # optimal | feasible | infeasible | no_solution
    termination: str  # gap_reached | time_limit | search_complete | wall_clock_safety
    objective: float | None
    bound: float | None
    gap: float | None
    runtime_s: float
    solver: str
    seed: int
    plan: Plan | None
    sizing: pd.DataFrame
    binding: str
    log: list[str] = field(default_factory=list)


def solve(scenario: Scenario, *, solver: str | None = None, time_limit: float | None = None,
          gap: float | None = None, seed: int | None = None, threads: int | None = None,
          progress: Progress | None = None) -> SolveResult:
    """Optimise organisation size, territories and quotas of ``scenario``.

    Keyword settings override the scenario's ``solver`` section.
    """
    overrides = {k: v for k, v in dict(name=solver, time_limit=time_limit, gap=gap, seed=seed,
                                        threads=threads).items() if v is not None}
    if overrides:
        scenario = scenario.with_settings(solver=overrides)
    spec = scenario.settings.solver
    with clock.running(clock.SearchClock(spec.deterministic, spec.time_limit)) as search:
        result = _solve(scenario, spec, progress)
    termination = result.termination
    if search.safety_stopped:  # the machine ran far slower than the work clock assumes
        termination = "wall_clock_safety"
    return dataclasses.replace(result, runtime_s=search.wall(), termination=termination)


def _solve(scenario: Scenario, spec, progress: Progress | None) -> SolveResult:
    say = progress or (lambda message: None)
    started = clock.now()
    deadline = started + spec.time_limit
    log: list[str] = []

    def note(message: str) -> None:
        log.append(message)
        say(message)

    # requirements that no plan can meet are diagnosed before any solving
    check_specification(scenario)
    if scenario.settings.strategy.objective == "balance":
        from allocator.districting import solve_districting

        result = solve_districting(scenario, spec, note, started)
        return dataclasses.replace(result, log=log)
    curve = response_curve(scenario)
    bounds = size_bounds(scenario, curve)
    feasible = [b for b in bounds if b.feasible]
    if not feasible:
        raise InfeasibleError("no head count in the allowed range can be staffed",
                              diagnosis=diagnose_sizing(scenario, bounds))
    problem = AlignmentProblem.from_scenario(scenario)
    # one LP for every head count and range: pairs and links priced in once serve them all
    large = not whole_model_fits(problem)
    # on a large map the ranges of head counts are bounded on a second core from the start
    worker = (range_worker.start(problem, curve, bounds, deadline)
              if large and spec.threads >= 2 else None)
    if worker is not None:  # the solvers here get the threads the worker leaves
        spec = spec.model_copy(update={"threads": spec.threads - 1})
    try:
        # team sizes in the strong links serve the branching of small maps; on a large map they
        # leave the staffing LP harder to round to a balanced plan in its time
        lp_model = HeadcountLp(scenario, problem, curve, teams=not large)
        rng = np.random.default_rng(spec.seed)
        order = sorted(feasible, key=lambda b: (-b.value_bound, b.headcount))
        best: Plan | None = None
        evaluated: dict[int, dict] = {}
        econ = economics(scenario)
        cheapest = min([econ.hire_cost, *econ.rep_cost])
        # the end of the limit bounds the head counts not planned (never more than 20 s of
        # work), unless the second core does
        range_time = min(RANGE_SHARE * spec.time_limit, 20.0)
        planning_deadline = deadline - (0.0 if worker is not None else range_time)
        rank = -1
        while order:
            rank += 1
            b = order.pop(0)
            incumbent = best.objective() if best is not None else -math.inf
            if b.value_bound <= incumbent + spec.gap * abs(incumbent):
                continue
            if best is not None and large:
                # on a large map one plan takes most of the limit and a second head count rarely
                # balances in what is left: the rest of the time bounds the head counts instead
                break
            now = clock.now()
            if now > planning_deadline:
                break
            # the best-bound head count gets most of the time; later ones share what is left
            share = 0.65 if rank == 0 or best is None else 0.34
            if worker is not None and rank == 0:
                share = FIRST_SHARE_LARGE  # its plan ends the planning (below)
            until = min(planning_deadline, now + max(share * (planning_deadline - now), 2.0))
            # after a head count without a plan, the next one's LP gets more time: its staffing
            # is what balances
            plan, info = plan_for_headcount(scenario, problem, curve, b, rng, until, note,
                                            incumbent, lp_model,
                                            lp_share=0.5 if best is None and rank > 0 else 0.2,
                                            spec=spec)
            evaluated[b.headcount] = info
            if info.get("lp_bound") == -math.inf and best is None:  # its LP is infeasible
                # more reps cost more: with none planned yet, smaller head counts come first
                order = ([c for c in order if c.headcount < b.headcount]
                         + [c for c in order if c.headcount > b.headcount])
            if info.get("over_budget"):
                # travel took this head count over the budget: smaller ones, by at least the reps
                # whose cost covers the excess, come first (bigger ones cost more people)
                fewer = b.headcount - max(1, math.ceil(info["over_budget"] / cheapest))
                order = ([c for c in order if c.headcount <= fewer]
                         + [c for c in order if c.headcount > fewer])
            if plan is not None:
                note(f"N={b.headcount}: objective {plan.objective():,.0f}, "
                     f"bound {min(_bound_of(info), b.value_bound):,.0f}")
                if best is None or plan.objective() > best.objective():
                    best = plan
        if best is not None and not large and clock.now() < planning_deadline - 2.0:
            # every head count is planned or pruned: the time left refines the best plan
            assignment, _ = lns(problem, best.staffing, best.assignment, spec, planning_deadline,
                                rng)
            assignment, _ = sales_moves(problem, best.staffing, assignment, planning_deadline,
                                        scenario.settings.alignment.contiguity)
            polished = make_plan(scenario, problem, best.staffing, assignment)
            if polished.objective() > best.objective():
                note(f"N={best.kpis['headcount']}: the time left raised the objective to "
                     f"{polished.objective():,.0f}")
                best = polished
        ranges: dict[int, tuple[float, str]] = {}
        branched: dict[int, tuple[float, int]] = {}
        if best is not None:
            found = worker.result(worker_wait(spec.time_limit)) if worker is not None else None
            if found is not None:
                ranges, messages = found
                for message in messages:
                    note(message)
            else:
                until = deadline
                if worker is not None:  # the planning used the ranges' time: they get it now
                    note(f"the second core's range bounds failed ({worker.error}): "
                         "bounded here instead")
                    until = max(deadline, clock.now() + range_time)
                ranges = bound_ranges(scenario, problem, curve, bounds, evaluated,
                                      best.objective(), spec.gap, until, note, lp_model)
            if not large:
                branched = branch_bounds(bounds, evaluated, ranges, best.objective(), spec.gap,
                                         deadline, note, lp_model)
        runtime = clock.now() - started
        sizing = sizing_table(bounds, evaluated, ranges, branched)
        if best is None:
            raise NoSolutionError("no plan found within the time limit; raise solver.time_limit or "
                                  "loosen alignment.balance tolerance")
        assert_plan(best)
        bound = float(sizing["bound"].max())
        objective = best.objective()
        rel_gap = max(0.0, (bound - objective) / max(abs(bound), 1e-9))
        searched_all = all(row.bound <= objective + spec.gap * abs(objective) or row.headcount in evaluated
                           for row in sizing.itertuples())
        status = "optimal" if rel_gap <= 1e-9 else "feasible"
        termination = "gap_reached" if rel_gap <= spec.gap else (
            "search_complete" if searched_all else "time_limit")
        return SolveResult(status, termination, objective, bound, rel_gap, runtime, spec.name,
                           spec.seed, best, sizing, binding_constraint(scenario, best, bounds, evaluated), log)
    finally:
        if worker is not None:
            worker.stop()


def whole_model_fits(problem: AlignmentProblem) -> bool:
    """Whether the map is small enough for the whole model on the chosen solver (pairs of each
    unit's candidate sites at most ``solver.exact_max_pairs``)."""
    s = problem.scenario.settings
    return problem.n * min(s.alignment.candidates,
                           len(problem.scenario.sites)) <= s.solver.exact_max_pairs


def plan_for_headcount(scenario: Scenario, problem: AlignmentProblem, curve: ResponseCurve,
                       bound, rng: np.random.Generator, until: float,
                       note: Progress, incumbent: float = -math.inf,
                       lp_model: HeadcountLp | None = None,
                       lp_share: float = 0.2, spec: SolverSpec | None = None
                       ) -> tuple[Plan | None, dict]:
    """The best plan found for one head count before ``until``, and its bound.

    A head count whose LP bound cannot beat ``incumbent`` (within the gap) is not planned.
    ``spec`` replaces the scenario's solver settings (its threads, when a second process
    bounds the ranges).
    """
    s = scenario.settings
    spec = spec or s.solver
    n = bound.headcount
    # the staffing is rounded from the LP on the fixed grid of prices ...
    lp = headcount_lp_bound(scenario, problem, n, curve, model=lp_model, price_rows=False,
                            time_limit=min(30.0, max(1.0, lp_share * (until - clock.now()))))
    info: dict = {"lp_bound": lp.value, "lp_exact": lp.exact}
    if not lp.feasible:  # its lp_bound is -inf
        note(f"N={n}: the LP relaxation is infeasible")
        return None, info
    small = whole_model_fits(problem)
    if small and lp.exact and lp_model is not None:
        # ... and on a small map the bound goes on with price rows of single sites (rows that
        # stay in the shared model, so they are left out on large maps, where the LP of the
        # next head count would pay for them before its staffing is known)
        tight = headcount_lp_bound(scenario, problem, n, curve, model=lp_model,
                                   time_limit=min(10.0, max(0.5, 0.5 * lp_share
                                                            * (until - clock.now()))))
        info["lp_bound"] = min(lp.value, tight.value)
        # one level of branching on the heaviest unit the LP splits: its best child's staffing
        # gives that unit a whole team
        tree = HeadcountBranching(lp_model, n, info["lp_bound"])
        tree.expand_root(clock.now() + max(0.5, 0.5 * lp_share * (until - clock.now())))
        info["tree"] = tree
    if _bound_of(info) <= incumbent + spec.gap * abs(incumbent):
        info["pruned"] = True
        note(f"N={n}: pruned, its bound {_bound_of(info):,.0f} cannot beat {incumbent:,.0f}")
        return None, info
    if lp.keep is None and math.isfinite(incumbent):
        # without the LP's staffing a plan here rarely balances: the time is better spent
        # bounding the head counts left (an incumbent exists already)
        note(f"N={n}: its LP was not solved in its time; left to the range bounds")
        return None, info
    econ = economics(scenario)
    candidates = []  # (label, staffing, rounded from an LP)
    branched = info["tree"].staffing() if "tree" in info else None
    if branched is not None:
        candidates.append(("LP-rounded after branching",
                           staffing_from_lp(problem, n, *branched), True))
    if lp.keep is not None and not small and lp_model is not None \
            and until - clock.now() >= DIVE_MIN_SECONDS:
        # on a large map the LP's staffing is rounded in steps (a dive) before it is aligned,
        # when the time allows for both
        dived = dive_staffing(lp_model, n, clock.now() + DIVE_SHARE * (until - clock.now()))
        if dived is not None:
            keep, hire, left = dived
            note(f"N={n}: the dive left {left} of the LP's keeps and hires fractional")
            candidates.append(("LP-dived", staffing_from_lp(problem, n, keep, hire), True))
    if lp.keep is not None:
        candidates.append(("LP-rounded", staffing_from_lp(problem, n, lp.keep, lp.hire), True))
    kept = choose_reps(problem, bound.kept, curve.marginal(bound.hours), s.strategy.margin,
                       econ.rep_hours, econ.rep_cost, econ.release_cost)
    try:
        candidates.append(("k-means", place_hires(problem, kept, bound.hires, rng), False))
    except ValueError:  # the team limit leaves fewer hire places beside these kept reps
        pass
    # a staffing rounded short of places (team limits) is not one of this head count, and one
    # rounded to the same places as an earlier one is not tried again
    staffings, seen = [], set()
    for label, st, from_lp in candidates:
        key = _staffing_key(st)
        if st.headcount == n and key not in seen:
            seen.add(key)
            staffings.append((label, st, from_lp))
    if not staffings:
        note(f"N={n}: no staffing fits the hire places and team limits")
        return None, info
    plan = None
    for attempt, (label, staffing, from_lp) in enumerate(staffings):
        if plan is not None and not from_lp:
            break  # k-means stands in for LP staffings that do not balance
        # on a small map every LP staffing is planned even when an earlier one balances: the
        # branching's gives its heavy unit a whole team, which pays on Texas (+1.6 % at 14 reps)
        # and loses on the Pacific (-4.6 % at 16 reps, where the plain rounding balances better)
        both = small and from_lp and attempt + 1 < len(staffings) and staffings[attempt + 1][2]
        staffing = ensure_site_capacity(problem, staffing)
        # the first staffing gets most of the time; the next is tried if it cannot balance (or,
        # with ``both``, whether or not it does)
        stop = until if attempt == len(staffings) - 1 else \
            clock.now() + 0.6 * (until - clock.now())
        assignment, search = align(problem, staffing, s.alignment.candidates,
                                   s.alignment.contiguity)
        violation = search.violation()
        # a small violation (a few units' work) is for exact re-solves of its neighbourhoods;
        # the staffing changes below cost far more work
        if 1e-9 < violation < SMALL_VIOLATION and clock.now() < stop - 1.0:
            short = min(stop, clock.now() + max(2.0, 0.25 * (stop - clock.now())))
            assignment, stats = lns(problem, staffing, assignment, spec, short, rng)
            info.update(stats)
            violation = balance_violation(problem, staffing, assignment)
        # repair rounds: team merges, hire moves, then exact re-solves, while balance improves
        while violation > 1e-9 and clock.now() < stop - 1.0:
            staffing, assignment = merge_repair(problem, staffing, assignment)
            staffing, assignment = move_hire_repair(problem, staffing, assignment)
            if balance_violation(problem, staffing, assignment) > 1e-9:
                # letting an existing rep go costs contribution: only when hires cannot fix it
                staffing, assignment = move_hire_repair(problem, staffing, assignment,
                                                        release=True)
            short = min(stop, clock.now() + max(2.0, 0.25 * (stop - clock.now())))
            assignment, stats = lns(problem, staffing, assignment, spec, short, rng)
            info.update(stats)
            violation = balance_violation(problem, staffing, assignment)
        if violation <= 1e-9:  # balanced: the rest of the time improves travel
            if not both:  # no other staffing is tried: the improvement gets all the time left
                stop = until
            if not small:
                # on a large map single moves judged on the true sales gain far more per second
                # than exact re-solves of neighbourhoods: they go first, to convergence
                assignment, stats = sales_moves(problem, staffing, assignment, stop,
                                                s.alignment.contiguity, max_rounds=10_000)
                info.update(stats)
            assignment, stats = lns(problem, staffing, assignment, spec, stop, rng)
            info.update(stats)
        search = LocalSearch(problem, staffing, assignment, s.alignment.contiguity)
        search.run()
        # its moves weigh travel only, and may undo sales the re-solves gained
        sales = TerritorySales(problem, staffing)
        if violation <= 1e-9 and sales.margin and \
                sales.value(search.assignment) < sales.value(assignment):
            search = LocalSearch(problem, staffing, assignment, s.alignment.contiguity)
        if search.violation() <= 1e-9:
            # single moves judged on the true sales: what the linearised re-solves leave. They
            # get a few seconds even when the repairs used the time up (they had none on the
            # demo, and gain 0.06 % there in about a second)
            moved, stats = sales_moves(problem, staffing, search.assignment,
                                       max(stop, clock.now() + SALES_MOVES_SECONDS),
                                       s.alignment.contiguity)
            info.update(stats)
            search = LocalSearch(problem, staffing, moved, s.alignment.contiguity)
        note(f"N={n}: staffing {label}, {len(staffing.sites)} territories, "
             f"balance violation {search.violation():.3g}")
        if search.violation() <= 1e-9:
            found = make_plan(scenario, problem, staffing, search.assignment)
            if plan is None or found.objective() > plan.objective():
                plan = found
            if not both:
                break
    if small and clock.now() < until - 1.0:
        # the whole model is pruned to each unit's nearest sites, so its bound is not a bound
        # of the head count; only its plan is used
        exact = solve_whole(scenario, problem, curve, n, plan, spec,
                            until - clock.now())
        if exact is not None and (plan is None or exact.objective() > plan.objective()):
            plan = exact
    info["violation"] = 0.0 if plan is not None else search.violation()
    if plan is None:
        note(f"N={n}: balance not reached (violation {search.violation():.3g})")
        return None, info
    if plan.costs["total"] > s.strategy.budget * (1 + 1e-9):
        info["over_budget"] = plan.costs["total"] - s.strategy.budget
        note(f"N={n}: over budget after travel by {info['over_budget']:,.0f}")
        return None, info
    info["objective"] = plan.objective()
    return plan, info


def _bound_of(info: dict) -> float:
    """The bound of a planned head count: its LP's, or its branching's where lower."""
    tree = info.get("tree")
    return min(info.get("lp_bound", math.inf), tree.bound() if tree is not None else math.inf)


def _staffing_key(staffing) -> tuple:
    return (tuple(int(u) for u in staffing.sites), tuple(int(h) for h in staffing.hires),
            tuple(tuple(int(r) for r in reps) for reps in staffing.reps))


def solve_whole(scenario: Scenario, problem: AlignmentProblem, curve: ResponseCurve, n: int,
                start: Plan | None, spec, time_left: float) -> Plan | None:
    """The whole integer program of head count ``n`` on the chosen solver, from ``start``.

    Its plan is re-evaluated with territory-level sales. Its bound is not used: the model is
    pruned to each unit's nearest sites, so it bounds a restriction, not the head count.
    """
    mip = build_headcount_mip(problem, n, curve, scenario.settings.alignment.candidates)
    if start is not None:
        _hint_whole(mip, problem, start)
    outcome = solve_mip(mip.model, spec.name, time_limit=max(0.5, time_left), gap=spec.gap / 4,
                        seed=spec.seed, threads=spec.threads)
    if outcome.objective is None:
        return None
    sites = scenario.sites["unit"].to_numpy()
    homes = scenario.reps["home"].to_numpy()
    kept = [k for k, var in mip.keep.items() if var.varValue > 0.5]
    hire_sites = np.repeat(sites, [int(round(mip.hire[t].varValue)) for t in mip.territories])
    staffing = staffing_from(homes[kept], kept, hire_sites)
    position = {int(u): t for t, u in enumerate(staffing.sites)}
    assignment = np.full(problem.n, -1, dtype=np.int64)
    for (i, t), var in mip.x.items():
        if var.varValue > 0.5:
            assignment[i] = position[int(sites[t])]
    if (assignment < 0).any():
        return None
    return make_plan(scenario, problem, staffing, assignment)


def _hint_whole(mip, problem: AlignmentProblem, plan: Plan) -> None:
    scenario = problem.scenario
    sites = scenario.sites["unit"].to_numpy()
    site_pos = {int(u): t for t, u in enumerate(sites)}
    staffing = plan.staffing
    kept = {r for reps in staffing.reps for r in reps}
    for k, var in mip.keep.items():
        var.setInitialValue(1 if k in kept else 0)
    hires = {site_pos[int(u)]: int(h) for u, h in zip(staffing.sites, staffing.hires, strict=True)}
    opened = {site_pos[int(u)] for u in staffing.sites}
    for t in mip.territories:
        mip.hire[t].setInitialValue(hires.get(t, 0))
        mip.open[t].setInitialValue(1 if t in opened else 0)
    unit_terr = np.array([site_pos[int(staffing.sites[t])] for t in plan.assignment])
    for (i, t), var in mip.x.items():
        var.setInitialValue(1 if unit_terr[i] == t else 0)
    hint_flows(mip, problem, unit_terr, {t: int(sites[t]) for t in mip.territories})
    # territory-level sales never exceed the pooled tangents, so this start is feasible
    mip.sigma.setInitialValue(min(float(plan.kpis["expected_sales"]), mip.sigma.upBound))


SMALL_VIOLATION = 0.5  # means per rep, summed over territories and measures
RANGE_WIDTH = 12  # head counts per range at first (the LP of a wider one is rarely useful)
RANGE_SHARE = 0.25  # of the time limit, for bounding the head counts not planned
# of a large map's planning time after its LP: the dive's share (the rest aligns), and the
# least planning time for a dive at all (on the demo its LP to optimality and its steps took
# 24 s of work and the balance repairs after it 18 s; with one core and a 60 s limit the head
# count has 19 s, and its ranges the time a dive would take)
DIVE_SHARE = 0.6
DIVE_MIN_SECONDS = 30.0
SALES_MOVES_SECONDS = 4.0  # of work the single sales moves may take past a plan's deadline
# on a large map with the ranges bounded on a second core: the first head count's share of the
# planning time (its plan ends the planning; the rest is for a second head count if it fails)
FIRST_SHARE_LARGE = 0.9


def worker_wait(time_limit: float) -> float:
    """Wall seconds to wait for the second core's bounds: until its clock's safety stop, and a
    little more (it answers at its deadline on the work clock, or there)."""
    return max(0.0, clock.SAFETY * time_limit + 5.0 - clock.current().wall()) + 30.0


def bound_ranges(scenario: Scenario, problem: AlignmentProblem, curve: ResponseCurve, bounds,
                 evaluated: dict[int, dict], objective: float, gap: float, deadline: float,
                 note: Progress, lp_model: HeadcountLp | None = None, rounds: int = 1,
                 visits_before_halving: int = 1) -> dict[int, tuple[float, str]]:
    """Bounds of the head counts whose bound is still above the best plan (within the gap), by
    ranges of consecutive head counts, until ``deadline``.

    The open head counts start as runs of up to ``RANGE_WIDTH`` that never straddle a change
    in the number of managers (a range pays the managers of its smallest head count, so a range
    across a step would bound its upper part a manager too high), each bounded at once by the
    Lagrangian of the last LP's duals (no solve). Then the range with the largest bound is
    taken next: bounded by warm LP rounds (and the other ranges' Lagrangians are refreshed with
    the new duals), or halved once its visits are done. So the work goes where the
    reported bound is decided. The result maps each head count bounded this way to its range's
    bound and the range's label.

    Each visit of a range takes up to ``rounds`` LP rounds, and a range is visited up to
    ``visits_before_halving`` times before it is halved; a single head count so visited ends
    the work. With no plan yet (``objective``
    minus infinity) every feasible head count is open and the work goes on until ``deadline``.
    """
    if lp_model is None:
        lp_model = HeadcountLp(scenario, problem, curve)
    target = objective + gap * abs(objective) if math.isfinite(objective) else -math.inf
    start: dict[int, float] = {}
    for b in bounds:
        info = evaluated.get(b.headcount, {})
        bound = min(b.value_bound, _bound_of(info))
        if b.feasible and bound > target and not info.get("lp_exact"):
            start[b.headcount] = bound
    open_counts = sorted(start)

    def lagrangian(lo: int, hi: int) -> float:
        lp_model.set_range(lo, hi)
        return lp_model.lagrangian_bound()

    managers = lp_model.econ.managers  # what the range's LP charges (set_range)
    # [bound, lo, hi, visits: LPs of its own, label of the range whose bound holds, exact]
    ranges: list[list] = []
    for n in open_counts:
        if ranges and ranges[-1][2] == n - 1 and n - ranges[-1][1] < RANGE_WIDTH \
                and managers(n) == managers(ranges[-1][1]):
            ranges[-1][0] = max(ranges[-1][0], start[n])
            ranges[-1][2] = n
        else:
            ranges.append([start[n], n, n, 0, "", False])

    def refresh(items: list[list]) -> None:
        for item in items:
            if item[3] == 0 and clock.now() < deadline - 0.5:
                value = lagrangian(item[1], item[2])
                if value < item[0]:
                    item[0] = value
                    item[4] = _range_label(item[1], item[2])

    refresh(ranges)
    solves = 0
    while ranges and clock.now() < deadline - 0.5:
        ranges.sort(key=lambda item: -item[0])
        worst = ranges[0]
        if worst[0] <= target:
            break
        bound, lo, hi, visits, label, exact = worst
        if exact or visits >= visits_before_halving:
            if lo == hi:  # a single head count bounded by its LP: nothing left to halve
                break
            mid = (lo + hi) // 2  # halves keep their parent's bound until their own is lower
            halves = [[bound, lo, mid, 0, label, False], [bound, mid + 1, hi, 0, label, False]]
            ranges[0:1] = halves
            refresh(halves)
            continue
        # a few warm-started rounds (one by default), from where the model stands (a range
        # visited again goes on with the pairs and links other ranges added since): every
        # round's Farley bound is valid, and more rounds cost more than bounding another range
        lp = headcount_lp_bound(scenario, problem, lo, curve, headcount_hi=hi, model=lp_model,
                                time_limit=max(0.5, deadline - clock.now()), max_rounds=rounds)
        solves += 1
        value = lp.value if lp.feasible else -math.inf
        worst[3] += 1
        worst[5] = lp.exact or not lp.feasible
        if value < bound:
            worst[0] = value
            worst[4] = _range_label(lo, hi)
        refresh(ranges)  # the new duals may bound the others better
    out: dict[int, tuple[float, str]] = {}
    for bound, lo, hi, _, label, _ in ranges:
        if label:
            for n in range(lo, hi + 1):
                out[n] = (bound, label)
    if open_counts:
        note(f"head-count ranges: {solves} LPs and the Lagrangian of their duals bounded "
             f"{len(out)} of {len(open_counts)} open head counts")
    return out


def branch_bounds(bounds, evaluated: dict[int, dict], ranges: dict[int, tuple[float, str]],
                  objective: float, gap: float, deadline: float, note: Progress,
                  lp_model: HeadcountLp) -> dict[int, tuple[float, int]]:
    """Lower the bounds still above the best plan (within the gap) by branching on where the
    heavy units go (:mod:`allocator.branching`), until ``deadline``; small maps only (each node
    is an LP over all pairs).

    The head count of largest bound takes the next step, so the work goes where the reported
    bound is decided. Returns each branched head count's bound and the LPs it took.
    """
    target = objective + gap * abs(objective)
    current: dict[int, float] = {}
    for b in bounds:
        if b.feasible:
            info = evaluated.get(b.headcount, {})
            current[b.headcount] = min(b.value_bound, _bound_of(info),
                                       ranges.get(b.headcount, (math.inf, ""))[0])
    # the head counts planned carry one level of branching already
    trees = {n: info["tree"] for n, info in evaluated.items() if "tree" in info}
    done: set[int] = set()
    while clock.now() < deadline - 0.5:
        open_counts = [n for n in current if n not in done]
        if not open_counts:
            break
        n = max(open_counts, key=lambda m: (current[m], -m))
        if current[n] <= target or current[n] < max(current.values()):
            break  # within the gap, or a head count that branching cannot lower holds the bound
        if n not in trees:
            trees[n] = HeadcountBranching(lp_model, n, current[n])
        tree = trees[n]
        if not tree.step(deadline):
            done.add(n)
        current[n] = min(current[n], tree.bound())
    out = {n: (tree.bound(), tree.solves) for n, tree in trees.items()}
    if out:
        note("branching on the heavy units' sites: "
             + ", ".join(f"N={n} {bound:,.0f} ({solves} LPs)"
                         for n, (bound, solves) in sorted(out.items())))
    return out


def _range_label(lo: int, hi: int) -> str:
    return f"{lo}-{hi}" if hi > lo else str(lo)


def sizing_table(bounds, evaluated: dict[int, dict],
                 ranges: dict[int, tuple[float, str]] | None = None,
                 branched: dict[int, tuple[float, int]] | None = None) -> pd.DataFrame:
    rows = []
    ranges, branched = ranges or {}, branched or {}
    for b in bounds:
        info = evaluated.get(b.headcount, {})
        lp = info.get("lp_bound", math.inf)
        lp_range, label = ranges.get(b.headcount, (math.inf, None))
        branch, nodes = branched.get(b.headcount, (math.inf, None))
        rows.append(dict(headcount=b.headcount, feasible=b.feasible, kept=b.kept, hires=b.hires,
                         sizing_bound=b.value_bound, lp_bound=lp if info else None,
                         range_bound=lp_range if label else None, lp_range=label,
                         branch_bound=branch if nodes is not None else None, branch_lps=nodes,
                         bound=min(b.value_bound, lp, lp_range, branch),
                         objective=info.get("objective"),
                         over_budget=info.get("over_budget"), reason=b.reason))
    return pd.DataFrame(rows)


def binding_constraint(scenario: Scenario, plan: Plan, bounds,
                       evaluated: dict[int, dict] | None = None) -> str:
    """Which requirement stops the organisation from growing (or shrinking) further."""
    s = scenario.settings
    n = plan.kpis["headcount"]
    over = sorted((m, info["over_budget"]) for m, info in (evaluated or {}).items()
                  if m > n and info.get("over_budget"))
    if over:  # a bigger organisation was planned and its travel took it over the budget
        m, excess = over[0]
        return (f"budget binds: the plan for {m} reps cost {excess:,.0f} more than the budget "
                f"{s.strategy.budget:,.0f} once travel was counted")
    refuted = sorted(m for m, info in (evaluated or {}).items()
                     if m > n and info.get("lp_bound") == -math.inf)
    if refuted and plan.costs["total"] > 0.8 * s.strategy.budget:
        # a bigger organisation has no LP solution, with the budget counting travel: the
        # budget (balance alone would not refute a head count the unconstrained range admits)
        return (f"budget binds: no plan with {refuted[0]} reps fits the budget "
                f"{s.strategy.budget:,.0f} once travel is counted (its LP relaxation is "
                f"infeasible; checked {len(refuted)} head counts above {n})")
    by_n = {b.headcount: b for b in bounds}
    up = by_n.get(n + 1)
    if n >= s.strategy.headcount.max:
        return f"headcount.max ({s.strategy.headcount.max}) binds"
    if up is not None and not up.feasible and up.people_cost > s.strategy.budget:
        return (f"budget binds: {n + 1} reps would cost at least {up.people_cost:,.0f} > budget "
                f"{s.strategy.budget:,.0f}")
    econ = economics(scenario)
    released = scenario.reps[~scenario.reps["rep_id"].isin(plan.reps["rep_id"])]
    # the cheapest extra rep: a hire, or taking back a released rep (saving the release cost)
    extra = min([econ.hire_cost, *(released["annual_cost"] - econ.release_cost)])
    extra += (econ.managers(n + 1) - econ.managers(n)) * econ.manager_cost
    left = s.strategy.budget - plan.costs["total"]
    if left < extra:
        return f"budget binds: {left:,.0f} left, less than one more rep costs ({extra:,.0f})"
    if n <= s.strategy.headcount.min:
        return f"headcount.min ({s.strategy.headcount.min}) binds"
    return ("diminishing returns: one more rep would add less contribution than cost "
            f"(budget {plan.kpis['budget_used']:.1%} used)")


def diagnose_sizing(scenario: Scenario, bounds) -> list[str]:
    """Why no head count works, in the scenario's own terms."""
    proven = diagnose_specification(scenario)
    if proven:
        return proven
    s = scenario.settings
    econ = economics(scenario)
    lines = []
    cheapest_rep = min([econ.hire_cost, *econ.rep_cost]) if len(econ.rep_cost) else econ.hire_cost
    n_min = s.strategy.headcount.min
    people = [b for b in bounds if "budget" in b.reason]
    if people:
        affordable = 0
        for n in range(1, s.strategy.headcount.max + 1):
            cost = n * cheapest_rep + econ.managers(n) * econ.manager_cost
            if cost > s.strategy.budget:
                break
            affordable = n
        lines.append(f"the budget of {s.strategy.budget:,.0f} pays for at most {affordable} reps; "
                     f"the minimum head count is {n_min}")
    other = {b.reason for b in bounds if b.reason and "budget" not in b.reason}
    lines.extend(sorted(other)[:3])
    return lines or ["no head count is feasible"]
