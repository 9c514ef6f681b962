"""Territory alignment for a fixed staffing: balanced LP, rounding, repair and local search.

The staffing fixes the open territories: each has a *site* (a unit where its reps are based) and
``n_t`` reps. The alignment assigns every unit to one territory so that, for every balance
measure ``m`` with tolerance ``tau_m`` and mean per rep ``omega_m = A_m / N``,

    (1 - tau_m) * omega_m * n_t  <=  sum_{i in t} a_im  <=  (1 + tau_m) * omega_m * n_t,

every territory is connected in the adjacency graph and contains its site, locked units stay with
their rep, and the travel cost ``sum_i c_i * d(i, site_t)`` is as small as we can make it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from allocator import clock
from allocator.geometry import neighbours
from allocator.scenario import Scenario
from allocator.solvers import solve_lp


@dataclass
class Staffing:
    """Open territories: site unit, existing reps (positions) and hires of each."""

    sites: np.ndarray
    reps: list[list[int]]
    hires: np.ndarray

    @property
    def n_reps(self) -> np.ndarray:
        return np.array([len(r) for r in self.reps], dtype=np.int64) + self.hires

    @property
    def headcount(self) -> int:
        return int(self.n_reps.sum())

    def copy(self) -> Staffing:
        return Staffing(self.sites.copy(), [list(r) for r in self.reps], self.hires.copy())

    def subset(self, keep: np.ndarray) -> tuple[Staffing, np.ndarray]:
        """The territories where ``keep`` holds, and the map from old to new positions (valid
        for the kept ones)."""
        kept = Staffing(self.sites[keep], [r for r, k in zip(self.reps, keep, strict=True) if k],
                        self.hires[keep])
        return kept, np.cumsum(keep) - 1


@dataclass
class AlignmentProblem:
    """Arrays of one scenario that every alignment step needs."""

    scenario: Scenario
    measures: np.ndarray  # (n, M) balance measures
    tolerance: np.ndarray  # (M,)
    travel_rate: np.ndarray  # (n,) cost per km of distance between unit and its site
    adjacency: list[np.ndarray]
    lock_unit: np.ndarray  # (n,) existing rep position a unit must stay with, or -1
    _distance_cache: dict = field(default_factory=dict)

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> AlignmentProblem:
        s = scenario.settings
        units = scenario.units
        measures = np.column_stack([units[b.measure].to_numpy(float) for b in s.alignment.balance])
        tolerance = np.array([b.tolerance for b in s.alignment.balance])
        # a round trip per ``hours_per_trip`` selling hours, on roads ``circuity`` x straight line
        trips = units["workload"].to_numpy(float) / s.travel.hours_per_trip
        rate = 2.0 * trips * s.travel.circuity * s.travel.cost_per_km
        rep_pos = {rid: k for k, rid in enumerate(scenario.reps["rep_id"])}
        lock = np.array([rep_pos.get(r, -1) if r else -1 for r in units["lock"]], dtype=np.int64)
        return cls(scenario, measures, tolerance, rate,
                   neighbours(scenario.edges, scenario.n_units), lock)

    @property
    def n(self) -> int:
        return len(self.measures)

    def bounds(self, staffing: Staffing, shrink: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper load of each territory and measure, shape (T, M), with the
        tolerance scaled by ``shrink``."""
        omega = self.measures.sum(axis=0) / staffing.headcount
        n_reps = staffing.n_reps[:, None]
        tol = shrink * self.tolerance
        return (1 - tol) * omega * n_reps, (1 + tol) * omega * n_reps

    def distance(self, units: np.ndarray, sites: np.ndarray) -> np.ndarray:
        return self.scenario.coordinates.distance(units, sites)

    def cost(self, units: np.ndarray, sites: np.ndarray) -> np.ndarray:
        return self.travel_rate[units] * self.distance(units, sites)


def candidate_pairs(problem: AlignmentProblem, staffing: Staffing, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each unit may join its ``k`` nearest open territories (its own if it is a site, or locked)."""
    coords = problem.scenario.coordinates
    near = coords.nearest(np.arange(problem.n), staffing.sites, k)
    units = np.repeat(np.arange(problem.n), near.shape[1])
    terr = near.ravel()
    site_of = {int(u): t for t, u in enumerate(staffing.sites)}
    forced = np.full(problem.n, -1)
    for u, t in site_of.items():
        forced[u] = t
    rep_territory = _rep_territory(staffing)
    for i in np.flatnonzero(problem.lock_unit >= 0):
        forced[i] = rep_territory.get(int(problem.lock_unit[i]), -1)
    keep = (forced[units] < 0) | (forced[units] == terr)
    units, terr = units[keep], terr[keep]
    missing = np.flatnonzero((forced >= 0) & ~np.isin(np.arange(problem.n), units))
    units = np.concatenate([units, missing])
    terr = np.concatenate([terr, forced[missing]])
    order = np.lexsort((terr, units))
    return units[order], terr[order]


def _rep_territory(staffing: Staffing) -> dict[int, int]:
    return {r: t for t, reps in enumerate(staffing.reps) for r in reps}


def balanced_lp(problem: AlignmentProblem, staffing: Staffing, units: np.ndarray,
                terr: np.ndarray, penalty: float | None = None,
                shrink: float = 1.0, with_duals: bool = False):
    """Solve the LP relaxation of balanced assignment over the given pairs with HiGHS.

    Balance rows are elastic: a violation costs ``penalty`` per unit of measure (scaled to the
    mean), so the LP always solves and reports how far balance is from holding. Returns the
    value of each pair, the LP objective (travel) and the total violation; with ``with_duals``
    also the LP value including penalties (a relaxation of the strict LP, so a lower bound on
    it) and the duals ``(y_unit (n,), y_load (T, M))`` in the form that prices a pair as
    ``c_it - y_i - sum_m a_im y_tm``.
    """
    n, T = problem.n, len(staffing.sites)
    M = problem.measures.shape[1]
    lower, upper = problem.bounds(staffing, shrink)
    scale = problem.measures.sum(axis=0) / staffing.headcount
    cost = problem.cost(units, staffing.sites[terr])
    if penalty is None:
        penalty = 1e3 * (cost.max() + 1.0)
    P = len(units)
    # columns: pairs, then slack+ and slack- per (territory, measure)
    rows_unit = units
    rows_bal = n + terr[:, None] * M + np.arange(M)[None, :]
    starts = np.arange(P + 1) * (1 + M)
    index = np.column_stack([rows_unit, rows_bal]).ravel()
    value = np.column_stack([np.ones(P), problem.measures[units] / scale]).ravel()
    slack_rows = n + np.arange(T * M)
    idx_all = np.concatenate([index, slack_rows, slack_rows])
    val_all = np.concatenate([value, -np.ones(T * M), np.ones(T * M)])
    start_all = np.concatenate([starts, P * (1 + M) + np.arange(1, 2 * T * M + 1)])
    ncols = P + 2 * T * M
    h = solve_lp(np.concatenate([cost, np.full(2 * T * M, penalty)]), np.zeros(ncols),
                 np.concatenate([np.ones(P), np.full(2 * T * M, highspy.kHighsInf)]),
                 np.concatenate([np.ones(n), (lower / scale).ravel()]),
                 np.concatenate([np.ones(n), (upper / scale).ravel()]),
                 start_all, idx_all, val_all)
    x = np.asarray(h.getSolution().col_value)
    violation = float(x[P:].sum())
    travel = float(cost @ x[:P])
    if not with_duals:
        return x[:P], travel, violation
    y = np.asarray(h.getSolution().row_dual)
    load_dual = y[n:].reshape(T, M) / scale[None, :]
    return x[:P], h.getInfo().objective_function_value, violation, (y[:n], load_dual)


def round_assignment(problem: AlignmentProblem, units: np.ndarray, terr: np.ndarray,
                     x: np.ndarray) -> np.ndarray:
    """Each unit to the territory holding its largest share in the LP."""
    assignment = np.full(problem.n, -1, dtype=np.int64)
    best = np.full(problem.n, -1.0)
    for u, t, v in zip(units, terr, x, strict=True):
        if v > best[u]:
            best[u] = v
            assignment[u] = t
    return assignment


def balance_violation(problem: AlignmentProblem, staffing: Staffing,
                      assignment: np.ndarray) -> float:
    """How far the territory loads lie outside their bounds, summed, in means per rep."""
    lower, upper = problem.bounds(staffing)
    load = np.zeros_like(lower)
    np.add.at(load, assignment, problem.measures)
    scale = problem.measures.sum(axis=0) / staffing.headcount
    return float(((np.maximum(load - upper, 0) + np.maximum(lower - load, 0)) / scale).sum())


class LocalSearch:
    """Moves of single units between adjacent territories, keeping every territory connected."""

    def __init__(self, problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                 contiguity: bool = True) -> None:
        self.problem = problem
        self.staffing = staffing
        self.assignment = assignment.copy()
        self.contiguity = contiguity
        T = len(staffing.sites)
        self.lower, self.upper = problem.bounds(staffing)
        self.scale = problem.measures.sum(axis=0) / staffing.headcount
        self.load = np.zeros((T, problem.measures.shape[1]))
        np.add.at(self.load, assignment, problem.measures)
        self.fixed = np.zeros(problem.n, dtype=bool)
        self.fixed[staffing.sites] = True
        self.fixed[problem.lock_unit >= 0] = True
        self.members: list[set[int]] = [set() for _ in range(T)]
        for i, t in enumerate(assignment):
            self.members[t].add(i)

    # -- measures of a plan ---------------------------------------------------------------
    def violation(self, load: np.ndarray | None = None) -> float:
        load = self.load if load is None else load
        over = np.maximum(load - self.upper, 0) + np.maximum(self.lower - load, 0)
        return float((over / self.scale).sum())

    def travel(self) -> float:
        return float(self.problem.cost(np.arange(self.problem.n),
                                       self.staffing.sites[self.assignment]).sum())

    # -- contiguity -------------------------------------------------------------------------
    def connected_without(self, t: int, i: int) -> bool:
        """Whether territory ``t`` stays connected when unit ``i`` leaves it."""
        if not self.contiguity:
            return True
        members = self.members[t]
        root = int(self.staffing.sites[t])
        seen = {root, i}
        queue = deque([root])
        while queue:
            u = queue.popleft()
            for v in self.problem.adjacency[u]:
                v = int(v)
                if v not in seen and v in members:
                    seen.add(v)
                    queue.append(v)
        return len(seen) == len(members) + (0 if i in members else 1)

    def components(self, t: int) -> list[set[int]]:
        """Connected parts of territory ``t``; the part holding the site comes first."""
        members = self.members[t]
        root = int(self.staffing.sites[t])
        parts = []
        left = set(members)
        order = [root] + [u for u in members if u != root]
        for start in order:
            if start not in left:
                continue
            part = {start}
            left.discard(start)
            queue = deque([start])
            while queue:
                u = queue.popleft()
                for v in self.problem.adjacency[u]:
                    v = int(v)
                    if v in left:
                        left.discard(v)
                        part.add(v)
                        queue.append(v)
            parts.append(part)
        return parts

    def move(self, i: int, t: int) -> None:
        old = self.assignment[i]
        self.members[old].discard(i)
        self.members[t].add(i)
        self.load[old] -= self.problem.measures[i]
        self.load[t] += self.problem.measures[i]
        self.assignment[i] = t

    # -- repairs ------------------------------------------------------------------------------
    def repair_contiguity(self) -> None:
        """Give every detached part of a territory to the adjacent territory it costs least to join."""
        if not self.contiguity:
            return
        for _ in range(50):
            changed = False
            for t in range(len(self.members)):
                parts = self.components(t)
                for part in parts[1:]:
                    target = self._best_neighbour_territory(part, t)
                    if target is None:
                        continue
                    for u in part:
                        self.move(u, target)
                    changed = True
            if not changed:
                return

    def _best_neighbour_territory(self, part: set[int], t: int) -> int | None:
        touching = sorted({int(self.assignment[v]) for u in part for v in self.problem.adjacency[u]
                           if int(self.assignment[v]) != t and int(v) not in part})
        if not touching:
            return None
        members = np.array(sorted(part))
        cost = [float(self.problem.cost(members, np.full(len(members), self.staffing.sites[o])).sum())
                for o in touching]
        return touching[int(np.argmin(cost))]

    def boundary_moves(self, i: int) -> list[int]:
        t = self.assignment[i]
        return sorted({int(self.assignment[v]) for v in self.problem.adjacency[i]} - {int(t)})

    def run(self, max_rounds: int = 60) -> None:
        """Balance first, then travel: accept a move if it lowers (violation, travel)."""
        problem = self.problem
        sites = self.staffing.sites
        for _ in range(max_rounds):
            improved = 0
            violation = self.violation()
            order = np.argsort(-problem.travel_rate, kind="stable")
            clock.charge_moves(len(order))
            for i in order:
                i = int(i)
                if self.fixed[i]:
                    continue
                t = int(self.assignment[i])
                targets = self.boundary_moves(i)
                if not targets:
                    continue
                a = problem.measures[i]
                here = float(problem.cost(np.array([i]), sites[[t]])[0])
                there = problem.cost(np.full(len(targets), i), sites[targets])
                best, best_key = None, (0.0, 0.0)
                for k, u in enumerate(targets):
                    load_t = self.load[t] - a
                    load_u = self.load[u] + a
                    before = self._viol(t, self.load[t]) + self._viol(u, self.load[u])
                    after = self._viol(t, load_t) + self._viol(u, load_u)
                    key = (after - before, float(there[k] - here))
                    if violation > 1e-9:
                        # while out of balance only balance counts: travel moves would fill
                        # neighbours to their bounds and leave no room for the repair
                        if key[0] >= -1e-12:
                            continue
                    elif key[0] > 1e-12 or key[1] >= -1e-9:
                        continue
                    if best is None or key < best_key:
                        best, best_key = u, key
                if best is not None and self.connected_without(t, i):
                    self.move(i, best)
                    violation += best_key[0]
                    improved += 1
            if improved == 0:
                break

    def _viol(self, t: int, load: np.ndarray) -> float:
        over = np.maximum(load - self.upper[t], 0) + np.maximum(self.lower[t] - load, 0)
        return float((over / self.scale).sum())


def choose_reps(problem: AlignmentProblem, kept: int, marginal: float, margin: float,
                hours: np.ndarray, cost: np.ndarray, release: float) -> list[int]:
    """The ``kept`` existing reps worth most: locked reps first, then by value of their hours.

    A rep's value is ``margin * marginal * hours_r - cost_r + release``, the contribution of their
    hours at the marginal return of the force, net of their cost.
    """
    value = margin * marginal * hours - cost + release
    locked = set(int(r) for r in problem.lock_unit[problem.lock_unit >= 0])
    order = sorted(range(len(value)), key=lambda r: (r not in locked, -value[r], r))
    return sorted(order[:kept])


def place_hires(problem: AlignmentProblem, kept: list[int], hires: int, rng: np.random.Generator,
                rounds: int = 10) -> Staffing:
    """Staffing with the kept reps at their homes and ``hires`` reps at hire sites.

    Weighted k-means on the units (weight = workload), with the kept reps' homes as fixed
    centres and the hires' centres snapped to the nearest hire site that still has room. Centres
    that snap to the same site form one territory with several reps.
    """
    scenario = problem.scenario
    coords = scenario.coordinates
    points = coords.embedded()
    weight = np.maximum(problem.measures[:, 0], 1e-9)
    homes = scenario.reps["home"].to_numpy()
    fixed_sites = homes[kept] if kept else np.array([], dtype=np.int64)
    hire_room = hire_places(problem, fixed_sites)
    hire_sites = np.array([u for u, r in hire_room.items() if r > 0], dtype=np.int64)
    if hires > sum(hire_room.get(int(s), 0) for s in hire_sites):
        raise ValueError("more hires than hire places")

    def snap(centres: np.ndarray) -> np.ndarray:
        room = {int(s): hire_room[int(s)] for s in hire_sites}
        chosen = np.empty(len(centres), dtype=np.int64)
        tree = cKDTree(points[hire_sites])
        k = min(len(hire_sites), 32)
        for c, centre in enumerate(centres):
            _, near = tree.query(centre, k=k)
            for j in np.atleast_1d(near):
                site = int(hire_sites[j])
                if room[site] > 0:
                    room[site] -= 1
                    chosen[c] = site
                    break
            else:  # every near site is full: take any site with room
                site = next(s for s, r in room.items() if r > 0)
                room[site] -= 1
                chosen[c] = site
        return chosen

    # k-means++ seeding of the hires, weighted by workload and squared distance
    centres = []
    current = list(points[fixed_sites]) if len(fixed_sites) else []
    dist2 = (np.full(problem.n, np.inf) if not current else
             np.min(((points[:, None, :] - np.array(current)[None, :, :]) ** 2).sum(-1), axis=1))
    for _ in range(hires):
        p = weight * np.where(np.isfinite(dist2), dist2, 1.0)
        pick = rng.choice(problem.n, p=p / p.sum()) if p.sum() > 0 else rng.integers(problem.n)
        centres.append(points[pick])
        dist2 = np.minimum(dist2, ((points - points[pick]) ** 2).sum(-1))
    centres = np.array(centres).reshape(hires, points.shape[1])
    hire_at = snap(centres) if hires else np.array([], dtype=np.int64)
    for _ in range(rounds if hires else 0):
        all_sites = np.concatenate([fixed_sites, hire_at]).astype(np.int64)
        nearest = cKDTree(points[all_sites]).query(points)[1]
        moved = centres.copy()
        for h in range(hires):
            members = nearest == len(fixed_sites) + h
            if members.any():
                moved[h] = np.average(points[members], axis=0, weights=weight[members])
        new_at = snap(moved)
        centres = moved
        if np.array_equal(new_at, hire_at):
            break
        hire_at = new_at
    return staffing_from(fixed_sites, kept, hire_at)


def hire_places(problem: AlignmentProblem, rep_homes: np.ndarray) -> dict[int, int]:
    """Hires each site can take: its ``max_hires``, and no more than a territory of
    ``alignment.max_reps_per_territory`` reps leaves beside the kept reps based there."""
    team = problem.scenario.settings.alignment.max_reps_per_territory
    based = pd.Series(np.asarray(rep_homes, dtype=np.int64)).value_counts().to_dict()
    sites = problem.scenario.sites
    return {int(u): int(max(0, min(r, team - based.get(int(u), 0))))
            for u, r in zip(sites["unit"], sites["max_hires"], strict=True)}


def staffing_from(rep_homes: np.ndarray, kept: list[int], hire_sites: np.ndarray) -> Staffing:
    """Group reps by site: one territory per distinct site."""
    sites = sorted(set(int(s) for s in rep_homes) | set(int(s) for s in hire_sites))
    position = {s: t for t, s in enumerate(sites)}
    reps: list[list[int]] = [[] for _ in sites]
    for r, home in zip(kept, rep_homes, strict=True):
        reps[position[int(home)]].append(int(r))
    hires = np.zeros(len(sites), dtype=np.int64)
    for s in hire_sites:
        hires[position[int(s)]] += 1
    return Staffing(np.array(sites, dtype=np.int64), reps, hires)


def align(problem: AlignmentProblem, staffing: Staffing, candidates: int,
          contiguity: bool = True) -> tuple[np.ndarray, LocalSearch]:
    """Balanced LP over pruned pairs, rounding, contiguity repair and local search.

    The LP is first solved with a tighter tolerance so that rounding its few split units, and
    the contiguity repair, land inside the real tolerance; the tightening is relaxed if the LP
    cannot meet it.
    """
    best = None
    for shrink in (0.5, 0.75, 1.0):
        k = candidates
        while True:
            units, terr = candidate_pairs(problem, staffing, k)
            x, _, violation = balanced_lp(problem, staffing, units, terr, shrink=shrink)
            if violation < 1e-6 or k >= len(staffing.sites):
                break
            k = min(2 * k, len(staffing.sites))  # pruning too tight for balance: widen it
        assignment = round_assignment(problem, units, terr, x)
        search = LocalSearch(problem, staffing, assignment, contiguity)
        search.repair_contiguity()
        search.run()
        if best is None or (search.violation(), search.travel()) < best[0]:
            best = ((search.violation(), search.travel()), search)
        if search.violation() <= 1e-9:
            break
    search = best[1]
    return search.assignment, search


def staffing_from_lp(problem: AlignmentProblem, headcount: int, keep_value: np.ndarray,
                     hire_value: np.ndarray) -> Staffing:
    """Round the LP's staffing: keep the reps it keeps most, hires by largest remainder.

    The LP places people where balance needs them (its balance rows tie each site's workload to
    its reps), which a location heuristic ignorant of balance does not.
    """
    scenario = problem.scenario
    homes = scenario.reps["home"].to_numpy()
    site_units = scenario.sites["unit"].to_numpy()
    locked = set(int(r) for r in problem.lock_unit[problem.lock_unit >= 0])
    spec = scenario.settings.reps
    must = len(homes) if spec is not None and spec.lock == "keep" else len(locked)
    total_room = int(scenario.sites["max_hires"].sum())
    k = int(np.clip(round(float(keep_value.sum())), max(must, headcount - total_room),
                    min(len(homes), headcount)))
    order = sorted(range(len(homes)), key=lambda r: (r not in locked, -keep_value[r], r))
    kept = sorted(order[:k])
    places = hire_places(problem, homes[kept])
    room = np.array([places[int(u)] for u in site_units], dtype=np.int64)
    hires = headcount - k
    value = np.minimum(np.maximum(hire_value, 0.0), room)
    count = np.minimum(np.floor(value + 1e-9).astype(np.int64), room)
    while count.sum() > hires:
        count[np.argmax(np.where(count > 0, -value + count, -np.inf))] -= 1
    remainder = np.where(count < room, value - count, -np.inf)
    for s in np.argsort(-remainder, kind="stable"):
        if count.sum() >= hires:
            break
        if count[s] < room[s]:
            count[s] += 1
    if count.sum() < hires:  # the LP spread hires thinner than the places: fill any room left
        for s in np.argsort(-value, kind="stable"):
            while count.sum() < hires and count[s] < room[s]:
                count[s] += 1
    hire_sites = np.repeat(site_units, count)
    return staffing_from(homes[kept], kept, hire_sites)


def reps_of_work(problem: AlignmentProblem, headcount: int) -> np.ndarray:
    """Each unit's work in reps at ``headcount`` reps: ``max_m a_im / ((1 + tau_m) omega_m)``,
    its largest measure over the most one rep may carry."""
    per_rep = (1 + problem.tolerance) * problem.measures.sum(axis=0) / headcount
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(per_rep > 0, problem.measures / per_rep, 0.0).max(axis=1)


def site_needs(problem: AlignmentProblem, headcount: int) -> np.ndarray:
    """Reps a territory needs at least so that its own site unit fits: per unit of ``problem``,
    ``max_m ceil(a_im / ((1 + tau_m) omega_m))``."""
    return np.maximum(1, np.ceil(reps_of_work(problem, headcount) - 1e-9)).astype(np.int64)


def ensure_site_capacity(problem: AlignmentProblem, staffing: Staffing) -> Staffing:
    """Give every territory the reps its own site unit needs, moving hires from territories that
    have more than they need (head count unchanged). A unit heavier than one rep can carry is
    staffed by several reps, never clipped."""
    need = site_needs(problem, staffing.headcount)[staffing.sites]
    room = problem.scenario.sites.set_index("unit")["max_hires"].to_dict()
    team = problem.scenario.settings.alignment.max_reps_per_territory
    new = staffing.copy()
    for t in np.argsort(-(need - new.n_reps), kind="stable"):
        while (new.n_reps[t] < need[t] and new.n_reps[t] < team
               and new.hires[t] < room.get(int(new.sites[t]), 0)):
            spare = new.n_reps - need
            donors = np.flatnonzero((new.hires > 0) & (spare > 0))
            if len(donors):
                donor = donors[np.argmax(spare[donors])]
            else:  # close a one-hire territory, the one whose site carries least work
                single = np.flatnonzero((new.hires == new.n_reps) & (new.n_reps == 1))
                single = single[single != t]
                if not len(single):
                    break
                donor = single[np.argmin(problem.measures[new.sites[single], 0])]
            new.hires[donor] -= 1
            new.hires[t] += 1
    return new.subset(new.n_reps > 0)[0]
