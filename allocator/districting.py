"""Objective ``balance``: a fixed head count drawn into balanced, contiguous, compact territories.

No sizing and no sales are optimised here (they are reported): the head count ``N`` is fixed,
every measure of ``alignment.balance`` must lie within its tolerance of the mean per rep, every
territory must be connected, and the compactness measure is minimised:

- ``travel``: ``sum_i c_i d(i, centre_t(i))``, the workload-weighted distance of each unit to its
  territory's centre (a hire site inside the territory), a balanced p-median;
- ``diameter``: ``max_t max_{i, j in t} D_ij``, the largest territory diameter, with ``D`` the
  shortest-path distance over the adjacency graph by edge length (``adjacency.length``), or the
  straight-line distance when edges carry no length.

The search is location-allocation (Hess): centres by weighted k-means on the hire sites; the
balanced alignment LP, rounding, contiguity repair and local search; exact re-solves of adjacent
territories (LNS) with the chosen solver; then each territory's centre moves to its weighted
median site and the alignment is improved again, while travel falls. For ``diameter`` a search
that lowers the largest territory diameter follows (:mod:`allocator.diameter`).

Bound: for ``travel``, the LP relaxation of the alignment with the final centres over *all*
unit-centre pairs (column generation), which bounds the plan given its centres. For
``diameter`` no bound is claimed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from allocator import clock
from allocator.alignment import (
    AlignmentProblem,
    LocalSearch,
    Staffing,
    align,
    balance_violation,
    balanced_lp,
    candidate_pairs,
    place_hires,
)
from allocator.checker import assert_plan
from allocator.diameter import diameters, lower_diameter, unit_distances
from allocator.exceptions import NoSolutionError, SpecificationError
from allocator.improve import lns, move_hire_repair
from allocator.plan import make_plan
from allocator.pmedian_bound import (
    MAX_PAIRS,
    STAGES,
    PMedianBound,
    candidate_centres,
    lagrangian_centres,
    pmedian_lp_bound,
    priced_pairs,
)
from allocator.scenario import Scenario


def solve_districting(scenario: Scenario, spec, note, started: float):
    """The ``balance`` objective; returns a :class:`allocator.solve.SolveResult`."""
    from allocator.solve import SolveResult

    s = scenario.settings
    n_reps = s.strategy.headcount.min
    deadline = started + spec.time_limit
    # the search weighs distance by workload (compactness), whatever travel costs per km
    problem = dataclasses.replace(AlignmentProblem.from_scenario(scenario),
                                  travel_rate=scenario.units["workload"].to_numpy(float))
    _check_specification(scenario, problem, n_reps)
    rng = np.random.default_rng(spec.seed)
    kept = list(range(len(scenario.reps)))
    staffing = place_hires(problem, kept, n_reps - len(kept), rng)
    diameter = s.alignment.compactness == "diameter"
    # travel first: a compact start; the diameter search gets the larger share when asked for
    # the LP bound of travel is priced after the search, within the limit: it gets the last
    # tenth (it takes a few seconds at 10,000 units)
    travel_until = started + (0.1 if diameter else 0.9) * spec.time_limit
    free = None  # the free-centre bound, once found
    if diameter or len(kept) or not _free_centres_apply(problem, n_reps):
        staffing, assignment = _location_allocation(problem, staffing, spec, travel_until, rng,
                                                    note)
    else:
        staffing, assignment, free = _lagrangian_restart(problem, staffing, n_reps, spec,
                                                         started, rng, note)
    if diameter:  # its search also brings an unbalanced start into balance
        distances = unit_distances(scenario)
        widest = diameters(distances, assignment, len(staffing.sites)).max()
        note(f"diameter search from {widest:.3f}")
        search = lower_diameter(problem, staffing, assignment, distances, rng, deadline)
        staffing, assignment = search.staffing, search.assignment
        note(f"diameter search: {search.max_diameter():.3f} after {search.iterations} moves")
    if balance_violation(problem, staffing, assignment) > 1e-9:
        raise NoSolutionError(
            "no balanced, contiguous plan found within the time limit; raise solver.time_limit "
            "or loosen the alignment.balance tolerances")
    plan = make_plan(scenario, AlignmentProblem.from_scenario(scenario), staffing, assignment)
    assert_plan(plan)
    runtime = clock.now() - started
    objective = -plan.objective()
    bound, bound_kind = None, "no bound is claimed for diameters"
    if not diameter:
        bound = alignment_lp_bound(problem, staffing)
        note(f"compactness {objective:,.2f}, LP bound with these centres {bound:,.2f}")
        bound_kind = "bound: LP of the alignment with the plan's centres (not of the problem)"
        # the bound of the problem: the balanced p-median LP with free centres (Lagrangian)
        alpha = (free.alpha if free is not None and free.alpha is not None
                 else problem.cost(np.arange(problem.n), staffing.sites[assignment]))
        more = pmedian_lp_bound(problem, n_reps, objective, deadline, alpha=alpha,
                                stages=STAGES if free is None else (1.0,))
        if more is not None and (free is None or more.bound > free.bound):
            steps = more.iterations + (free.iterations if free is not None else 0)
            free = dataclasses.replace(more, iterations=steps)
        if free is not None:
            bound = min(free.bound, objective)
            bound_kind = (f"bound: LP of the balanced p-median with free centres, contiguity "
                          f"relaxed ({free.iterations} Lagrangian steps, stopped: "
                          f"{free.stopped_by})")
            note(f"{bound_kind}: {bound:,.2f}")
    gap = None if bound is None else max(0.0, (objective - bound) / max(abs(objective), 1e-9))
    status = "optimal" if gap is not None and gap <= 1e-9 else "feasible"
    termination = "gap_reached" if gap is not None and gap <= spec.gap else "time_limit"
    sizing = pd.DataFrame([dict(headcount=n_reps, feasible=True, kept=len(kept),
                                hires=n_reps - len(kept), sizing_bound=None, lp_bound=bound,
                                bound=bound, objective=objective, reason="")])
    binding = (f"head count fixed at {n_reps}; compactness '{s.alignment.compactness}' "
               f"minimised within the balance tolerances; {bound_kind}")
    return SolveResult(status, termination, objective, bound, gap, runtime, spec.name, spec.seed,
                       plan, sizing, binding, [])


# the k-means start's share of the limit, then rounds of (Lagrangian until, search until)
RESTART_FIRST = 0.25
RESTART_ROUNDS = ((0.45, 0.65), (0.72, 0.9))


def _free_centres_apply(problem: AlignmentProblem, n_reps: int) -> bool:
    """Whether the free-centre bound (and its centres) is priced on this map."""
    centres, _, most = candidate_centres(problem)
    return bool(len(centres) and most.max() <= 1
                and priced_pairs(problem, n_reps) <= MAX_PAIRS)


def _lagrangian_restart(problem: AlignmentProblem, staffing: Staffing, n_reps: int, spec,
                        started: float, rng: np.random.Generator, note
                        ) -> tuple[Staffing, np.ndarray, PMedianBound | None]:
    """Location-allocation from k-means, then again from the centres of the free-centre
    Lagrangian; the better plan and the bound found on the way.

    Why: location-allocation stops at the first plan whose centres are the weighted medians
    of their territories. On the 400-unit lattice (10 territories, +-5 %) that was 2.5 % above
    the integer optimum of the balanced p-median (10,373.7, contiguous, found by HiGHS in 4
    minutes), while the same search started from the Lagrangian's centres came within 0.2 %.
    The first plan's travel starts the multipliers and sets the Polyak steps.
    """
    limit = spec.time_limit
    staffing, assignment = _location_allocation(problem, staffing, spec,
                                                started + RESTART_FIRST * limit, rng, note)
    best = ((balance_violation(problem, staffing, assignment),
             _travel(problem, staffing, assignment)), staffing, assignment)
    alpha = problem.cost(np.arange(problem.n), staffing.sites[assignment])
    free: PMedianBound | None = None
    tried: set[tuple[int, ...]] = set()
    for bound_until, search_until in RESTART_ROUNDS:
        # the first round widens the tolerances by stages; later ones go on from its multipliers
        more = pmedian_lp_bound(problem, n_reps, best[0][1], started + bound_until * limit,
                                alpha=alpha, stages=STAGES if free is None else (1.0,))
        if more is None or more.alpha is None:
            break
        steps = more.iterations + (free.iterations if free is not None else 0)
        if free is None or more.bound > free.bound:
            free = dataclasses.replace(more, iterations=steps)
        else:
            free = dataclasses.replace(free, iterations=steps)
        alpha = more.alpha
        note(f"free-centre bound {free.bound:,.2f} after {free.iterations} Lagrangian steps")
        centres = lagrangian_centres(problem, n_reps, alpha)
        if centres is None or tuple(centres) in tried:
            continue
        tried.add(tuple(centres))
        start = Staffing(centres, [[] for _ in centres], np.ones(len(centres), dtype=np.int64))
        other, other_assignment = _location_allocation(problem, start, spec,
                                                       started + search_until * limit, rng, note)
        key = (balance_violation(problem, other, other_assignment),
               _travel(problem, other, other_assignment))
        note(f"from the Lagrangian's centres: travel {key[1]:,.2f} (violation {key[0]:.3g}); "
             f"best so far {best[0][1]:,.2f} (violation {best[0][0]:.3g})")
        if key < best[0]:
            best = (key, other, other_assignment)
    return best[1], best[2], free


def _check_specification(scenario: Scenario, problem: AlignmentProblem, n_reps: int) -> None:
    s = scenario.settings
    room = int(scenario.sites["max_hires"].sum())
    if n_reps < len(scenario.reps):
        raise SpecificationError(f"objective 'balance' keeps every existing rep: there are "
                                 f"{len(scenario.reps)}, above the fixed head count {n_reps}")
    if n_reps - len(scenario.reps) > room:
        raise SpecificationError(f"the fixed head count {n_reps} needs "
                                 f"{n_reps - len(scenario.reps)} hires; the hire sites have room "
                                 f"for {room}")
    if n_reps > problem.n:
        raise SpecificationError(f"the fixed head count {n_reps} exceeds the {problem.n} units")
    heaviest = problem.measures.max(axis=0) / (problem.measures.sum(axis=0) / n_reps)
    limit = s.alignment.max_reps_per_territory * (1 + problem.tolerance)
    worst = int(np.argmax(heaviest / limit))
    if heaviest[worst] > limit[worst]:
        measure = s.alignment.balance[worst].measure
        unit = scenario.units["unit_id"].iloc[int(np.argmax(problem.measures[:, worst]))]
        raise SpecificationError(
            f"unit {unit} alone has {heaviest[worst]:.2f} x the mean {measure} per rep; at most "
            f"{s.alignment.max_reps_per_territory} rep(s) per territory can carry "
            f"{limit[worst]:.2f} x")


def _location_allocation(problem: AlignmentProblem, staffing: Staffing, spec, until: float,
                         rng: np.random.Generator, note) -> tuple[Staffing, np.ndarray]:
    """Alternate allocation and location (Hess), then improve the best plan by LNS.

    Allocation: the balanced LP with the current centres, rounded and repaired, against the
    previous assignment improved by local search; the better one stays. Location: every
    hires-only territory's centre moves to its weighted median site. Rounds go on while a
    centre moves and travel falls, within four fifths of the time; the rest of the
    time re-solves neighbourhoods exactly (LNS).
    """
    s = problem.scenario.settings
    started = clock.now()
    assignment, search = align(problem, staffing, s.alignment.candidates, s.alignment.contiguity)
    if search.violation() > 1e-9:
        staffing, assignment = move_hire_repair(problem, staffing, assignment)
    best = (balance_violation(problem, staffing, assignment), _travel(problem, staffing, assignment))
    best_state = (staffing, assignment)
    note(f"alignment: violation {best[0]:.3g}, travel {best[1]:,.2f}")
    for round_ in range(100):
        moved = relocate_centres(problem, best_state[0], best_state[1])
        if moved is None or clock.now() > started + 0.8 * (until - started):
            break
        search = LocalSearch(problem, moved, best_state[1], s.alignment.contiguity)
        search.run()
        options = [((search.violation(), search.travel()), (moved, search.assignment))]
        fresh, fresh_search = align(problem, moved, s.alignment.candidates,
                                    s.alignment.contiguity)
        options.append(((fresh_search.violation(), fresh_search.travel()), (moved, fresh)))
        key, state = min(options, key=lambda option: option[0])
        note(f"location round {round_ + 1}: violation {key[0]:.3g}, travel {key[1]:,.2f}")
        if not key < (best[0], best[1] * (1 - 1e-6)):
            break
        best, best_state = key, state
    staffing, assignment = best_state
    # a neighbourhood holds a territory and at least one adjacent one
    size = int(2.5 * problem.n / len(staffing.sites)) + 1
    assignment, stats = lns(problem, staffing, assignment, spec, until, rng,
                            max_units=max(160, size))
    key = (balance_violation(problem, staffing, assignment), _travel(problem, staffing, assignment))
    note(f"LNS: {stats['resolves']} re-solves, {stats['improved']} improved; violation "
         f"{key[0]:.3g}, travel {key[1]:,.2f}")
    return (staffing, assignment) if key <= best else best_state


def relocate_centres(problem: AlignmentProblem, staffing: Staffing,
                     assignment: np.ndarray) -> Staffing | None:
    """Move each hires-only territory's centre to its weighted median site (the site inside it
    with least travel to its units); ``None`` when no centre moves. Existing reps keep their
    homes."""
    scenario = problem.scenario
    room = scenario.sites.set_index("unit")["max_hires"].to_dict()
    new = staffing.copy()
    taken = {int(u) for u in staffing.sites}
    changed = False
    for t in range(len(staffing.sites)):
        if staffing.reps[t]:
            continue
        members = np.flatnonzero(assignment == t)
        options = np.array([u for u in members if room.get(int(u), 0) >= staffing.hires[t]
                            and (int(u) not in taken or u == staffing.sites[t])], dtype=np.int64)
        if len(options) < 2:
            continue
        # travel of the territory from each candidate centre, in blocks to bound memory
        cost = np.empty(len(options))
        for k in range(0, len(options), 256):
            block = options[k:k + 256]
            grid = problem.travel_rate[members][None, :] * problem.distance(
                members[None, :], block[:, None])
            cost[k:k + 256] = grid.sum(axis=1)
        here = cost[options == staffing.sites[t]][0]
        best = int(np.argmin(cost))
        if cost[best] < here * (1 - 1e-9):
            taken.discard(int(staffing.sites[t]))
            taken.add(int(options[best]))
            new.sites[t] = options[best]
            changed = True
    return new if changed else None


def _travel(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray) -> float:
    return float(problem.cost(np.arange(problem.n), staffing.sites[assignment]).sum())


def alignment_lp_bound(problem: AlignmentProblem, staffing: Staffing, start_k: int = 12,
                       max_rounds: int = 30) -> float:
    """Lower bound on travel of any balanced plan with these centres (contiguity relaxed).

    The balanced LP (:func:`balanced_lp`) over pruned pairs gives duals ``y_tm`` of the balance
    rows; the Lagrangian value

        L(y) = sum_tm y_tm b_tm + sum_i min_t (c_it - sum_m a_im y_tm)

    (``b_tm`` the lower bound where ``y_tm > 0``, else the upper) bounds every balanced
    assignment over *all* pairs. Pairs pricing below the units' duals are added until none is
    left, when ``L`` equals the LP value.
    """
    T = len(staffing.sites)
    units, terr = candidate_pairs(problem, staffing, min(start_k, T))
    lower, upper = problem.bounds(staffing)
    bound = -math.inf
    for _ in range(max_rounds):
        _, _, _, (unit_dual, load_dual) = balanced_lp(problem, staffing, units, terr,
                                                      with_duals=True)
        value = float((load_dual * np.where(load_dual > 0, lower, upper)).sum())
        new_u, new_t = [], []
        for lo in range(0, problem.n, 4096):
            block = np.arange(lo, min(lo + 4096, problem.n))
            priced = (problem.cost(block[:, None], staffing.sites[None, :])
                      - problem.measures[block] @ load_dual.T)
            best = priced.argmin(axis=1)
            least = priced[np.arange(len(block)), best]
            value += float(least.sum())
            short = least < unit_dual[block] - 1e-9 * max(1.0, abs(float(unit_dual[block].max())))
            new_u.append(block[short])
            new_t.append(best[short])
        bound = max(bound, value)
        new_u, new_t = np.concatenate(new_u), np.concatenate(new_t)
        fresh = ~np.isin(new_u * T + new_t, units * T + terr)
        if not fresh.any():
            return bound
        units = np.concatenate([units, new_u[fresh]])
        terr = np.concatenate([terr, new_t[fresh]])
        order = np.lexsort((terr, units))
        units, terr = units[order], terr[order]
    return bound


def write_districting_scenario(folder: Path, units: pd.DataFrame, edges: pd.DataFrame, *,
                               territories: int, tolerance: float,
                               measures: tuple[str, ...] = ("workload",),
                               compactness: str = "travel", potential: str = "workload",
                               name: str = "districts", islands: str = "error",
                               settings: dict[str, Any] | None = None) -> Path:
    """Write a territory-design scenario (tables and YAML) into ``folder``; return its YAML.

    ``units`` has ``unit_id, x, y`` (planar) and the columns named by ``measures`` and
    ``potential`` (which also stands for last year's sales); ``edges`` has ``a, b`` and
    optionally ``length``. Every unit is a possible centre; ``territories`` of them are drawn,
    each of ``measures`` within ``tolerance`` of its mean, contiguous, minimising
    ``compactness`` (``travel`` or ``diameter``). ``settings`` is merged into the YAML section
    by section (for example ``{"solver": {"time_limit": 5}}``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    units.to_csv(folder / "units.csv", index=False)
    edges.to_csv(folder / "edges.csv", index=False)
    pd.DataFrame({"unit_id": units["unit_id"], "max_hires": 1}).to_csv(folder / "sites.csv",
                                                                       index=False)
    merged: dict[str, Any] = {
        "name": name,
        "units": {"table": "units.csv", "x": "x", "y": "y", "lon": None, "lat": None,
                  "coordinates": "planar", "potential": potential,
                  "last_year_sales": potential},
        "adjacency": {"source": "edges", "edges": "edges.csv", "islands": islands,
                      **({"length": "length"} if "length" in edges else {})},
        "hiring": {"sites": {"table": "sites.csv"}},
        "strategy": {"objective": "balance",
                     "headcount": {"min": territories, "max": territories}},
        "alignment": {"balance": [{"measure": m, "tolerance": tolerance} for m in measures],
                      "contiguity": True, "compactness": compactness,
                      "max_reps_per_territory": 1},
    }
    for key, value in (settings or {}).items():
        merged[key] = {**merged.get(key, {}), **value}
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(merged, sort_keys=False))
    return path
