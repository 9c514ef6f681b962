"""Min-max diameter compactness: the largest territory diameter, and a search that lowers it.

The diameter of a territory is ``max_{i, j in t} D_ij``. ``D`` is the shortest-path distance over
the adjacency graph by edge length when the edges carry lengths (``adjacency.length``), else the
straight-line distance between units.

The search (:meth:`DiameterSearch.run`) lowers the largest diameter in steps: for a target just
below the best plan's, units farther apart than the target *conflict*, and annealing over moves
of border units removes the conflicts while a penalty with an oscillating weight brings balance
back; contiguity is never broken. A plan without conflicts and in balance is the next best, and
the target drops again. This is the p-centre idea of solving a min-max problem as a sequence of
feasibility problems.
"""

from __future__ import annotations

import math
import random

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from allocator import clock
from allocator.alignment import AlignmentProblem, Staffing
from allocator.exceptions import SpecificationError
from allocator.scenario import Scenario

MAX_UNITS = 8000  # the distance matrix is n x n floats
# annealing of conflicts + weight x balance violation (violation in means per rep)
TEMPERATURE = 0.6  # a move adding one conflict is taken about once in 5 tries
WEIGHT_START, WEIGHT_MIN, WEIGHT_STEP = 50.0, 5.0, 1.02
STALE = 100_000  # moves without a better plan before going back to the best one
SHRINK = 1 - 1e-4  # the next target lies just below the best plan's largest diameter
TRIALS, TRIAL_SHARE = 3, 0.5  # searches from the start, and their share of the time
# one tried move, in CPU seconds on the 2-core reference machine (taken moves included)
SECONDS_PER_MOVE = 2.7e-6


def unit_distances(scenario: Scenario) -> np.ndarray:
    """The ``n x n`` distance matrix that diameters are measured in."""
    n = scenario.n_units
    if n > MAX_UNITS:
        raise SpecificationError(f"compactness 'diameter' keeps an n x n distance matrix; "
                                 f"{n} units exceed {MAX_UNITS}: use compactness 'travel'")
    cached = scenario._extra.get("unit_distances")
    if cached is not None:
        return cached
    if scenario.edge_length is not None:
        e = scenario.edges
        graph = coo_matrix((np.concatenate([scenario.edge_length, scenario.edge_length]),
                            (np.concatenate([e[:, 0], e[:, 1]]),
                             np.concatenate([e[:, 1], e[:, 0]]))), shape=(n, n)).tocsr()
        dist = dijkstra(graph, directed=False)
    else:
        everything = np.arange(n)
        dist = scenario.coordinates.distance(everything[:, None], everything[None, :])
    scenario._extra["unit_distances"] = dist
    return dist


def diameters(dist: np.ndarray, assignment: np.ndarray, territories: int) -> np.ndarray:
    out = np.zeros(territories)
    for t in range(territories):
        members = np.flatnonzero(assignment == t)
        if len(members) > 1:
            out[t] = dist[np.ix_(members, members)].max()
    return out


def lower_diameter(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                   dist: np.ndarray, rng: np.random.Generator, deadline: float,
                   trials: int | None = None) -> DiameterSearch:
    """Searches from one start: ``trials`` of them share half the time, the best goes on.

    One search's result depends much on its random moves (a few per cent of the diameter
    between seeds); the best of several short ones, continued, is steadier than one long one.
    """
    trials = TRIALS if trials is None else trials
    share = TRIAL_SHARE * (deadline - clock.now()) / trials
    searches = []
    for _ in range(trials if trials > 1 else 0):
        search = DiameterSearch(problem, staffing, assignment, dist,
                                np.random.default_rng(int(rng.integers(2**62))))
        search.run(clock.now() + share)
        searches.append(search)
    if not searches:
        searches.append(DiameterSearch(problem, staffing, assignment, dist, rng))
    best = min(searches, key=lambda search: search.best_key)
    best.iterations = sum(search.iterations for search in searches)
    best.run(deadline)
    return best


class DiameterSearch:
    """Lowers the largest territory diameter of a balanced, contiguous plan."""

    def __init__(self, problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                 dist: np.ndarray, rng: np.random.Generator) -> None:
        self.problem = problem
        self.staffing = staffing.copy()
        self.assignment = assignment.copy()
        self.dist = dist
        self.rng = rng
        T = len(staffing.sites)
        self.T = T
        self.lower, self.upper = problem.bounds(staffing)
        self.load = np.zeros((T, problem.measures.shape[1]))
        np.add.at(self.load, assignment, problem.measures)
        self.members = [set(np.flatnonzero(assignment == t).tolist()) for t in range(T)]
        self.labels = self.assignment.tolist()  # the same, for fast reads one unit at a time
        self.diam = diameters(dist, assignment, T)
        self.scale = float(self.diam.max()) or 1.0
        scenario = problem.scenario
        room = scenario.sites.set_index("unit")["max_hires"]
        self.room = np.zeros(problem.n, dtype=np.int64)
        self.room[room.index.to_numpy()] = room.to_numpy()
        # units that may not change territory: locked units and existing reps' homes; the site
        # of a hires-only territory may move with its hires to another unit with room
        self.fixed = problem.lock_unit >= 0
        for t, reps in enumerate(staffing.reps):
            if reps:
                self.fixed[staffing.sites[t]] = True
        self.adjacency = [a.tolist() for a in problem.adjacency]
        self.iterations = 0
        self.best_key = (math.inf, math.inf)  # of the last run: largest, summed diameters

    # -- state ------------------------------------------------------------------------------
    def max_diameter(self) -> float:
        return float(self.diam.max())

    def key(self) -> tuple[float, float]:
        return float(self.diam.max()), float(self.diam.sum())

    def _connected_without(self, t: int, leaving: int) -> bool:
        """Territory ``t`` stays connected when ``leaving`` leaves it.

        It does when the territory's neighbours of ``leaving`` stay connected to each other:
        first through each other alone (most moves), else by a search through the territory
        that stops once it has met them all."""
        assignment = self.labels
        adjacency = self.adjacency
        ends = [v for v in adjacency[leaving] if assignment[v] == t]
        if len(ends) <= 1:
            return bool(ends) or len(self.members[t]) == 1
        for around in (set(ends), None):  # around the unit, then the whole territory
            seen = {ends[0]}
            stack = [ends[0]]
            missing = len(ends) - 1
            targets = set(ends)
            while stack and missing:
                u = stack.pop()
                for v in adjacency[u]:
                    if v in seen or v == leaving or assignment[v] != t:
                        continue
                    if around is not None and v not in around:
                        continue
                    seen.add(v)
                    stack.append(v)
                    if v in targets:
                        missing -= 1
            if not missing:
                return True
        return False

    def _site_ok(self, t: int, i: int) -> bool:
        """Unit ``i`` may leave ``t``: it is not its site, or the site can move."""
        return int(self.staffing.sites[t]) != i or (not self.staffing.reps[t]
                                                    and len(self.members[t]) > 1)

    def _apply(self, i: int, a: int, b: int) -> None:
        m = self.problem.measures[i]
        self.members[a].discard(i)
        self.members[b].add(i)
        self.load[a] -= m
        self.load[b] += m
        self.assignment[i] = b
        self.labels[i] = b

    # -- search -------------------------------------------------------------------------------
    def run(self, deadline: float) -> tuple[Staffing, np.ndarray]:
        """Lower the largest diameter step by step until ``deadline``.

        For a target ``D`` below the best balanced plan's largest diameter, two units farther
        apart than ``D`` *conflict*: they may not share a territory. The search anneals

            conflicts + weight * balance violation

        over moves of one border unit to an adjacent territory (contiguity is kept throughout).
        When a plan has no conflict and is balanced it is the new best, and the target drops
        below its largest diameter. The balance weight oscillates: raised while the plan is out
        of balance, lowered while it is in, so the search crosses between balanced plans that
        no balanced single move connects.

        Each move is priced in constant time: ``conflicts[t, i]`` counts the units of
        territory ``t`` that conflict with unit ``i``, so moving ``i`` from ``a`` to ``b``
        changes the conflicts by ``conflicts[b, i] - conflicts[a, i]``; only a taken move
        updates two rows of it.
        """
        n, T = self.problem.n, self.T
        self.omega = self.problem.measures.sum(axis=0) / self.staffing.headcount
        # balance arithmetic in plain floats, in means per rep (one move is a few operations)
        unit_load = (self.problem.measures / self.omega).tolist()
        lower = (self.lower / self.omega).tolist()
        upper = (self.upper / self.omega).tolist()
        n_measures = len(self.omega)

        def violation_of(t: int, load: list[float]) -> float:
            over = 0.0
            low, high = lower[t], upper[t]
            for k in range(n_measures):
                if load[k] > high[k]:
                    over += load[k] - high[k]
                elif load[k] < low[k]:
                    over += low[k] - load[k]
            return over

        draw = random.Random(int(self.rng.integers(2**62))).random
        adjacency = self.adjacency
        fixed = self.fixed.tolist()
        hires_only = [not reps for reps in self.staffing.reps]
        best_key = (math.inf, math.inf)
        best_assignment = self.assignment.copy()
        everything = np.arange(n)

        def restart(assignment: np.ndarray):
            """State of ``assignment``: its loads, violations, and conflicts of the target."""
            self._restore(assignment)
            load = [[0.0] * n_measures for _ in range(T)]
            for i, t in enumerate(self.assignment.tolist()):
                for k in range(n_measures):
                    load[t][k] += unit_load[i][k]
            violation = [violation_of(t, load[t]) for t in range(T)]
            return self.labels, load, violation

        def retarget(target: float, assignment: list[int]):
            far = self.dist > target
            conflicts = np.zeros((T, n), dtype=np.int32)
            for t in range(T):
                conflicts[t] = far[:, np.flatnonzero(self.assignment == t)].sum(axis=1)
            own = conflicts[assignment, everything]
            # int8 rows: a taken move adds one row to two territories' counts
            return (far.astype(np.int8), conflicts, int(own.sum()) // 2,
                    np.flatnonzero(own).tolist())

        assignment, load, violation = restart(best_assignment)
        if sum(violation) <= 1e-12 and self._balanced():
            best_key = self.key()
        # an unbalanced start is no plan: the search first brings it into balance
        far, conflicts, total, hot = retarget(best_key[0] * SHRINK, assignment)
        weight, temperature = WEIGHT_START, TEMPERATURE
        stale = 0
        moves = 0
        while True:
            moves += 1
            if moves & 255 == 0:
                clock.charge(256 * SECONDS_PER_MOVE)
                if clock.now() >= deadline:
                    break
                weight = (weight * WEIGHT_STEP if sum(violation) > 1e-12
                          else max(weight / WEIGHT_STEP, WEIGHT_MIN))
                if stale > STALE:  # lost: back to the best plan
                    assignment, load, violation = restart(best_assignment)
                    far, conflicts, total, hot = retarget(best_key[0] * SHRINK, assignment)
                    stale = 0
            stale += 1
            if hot and draw() < 0.7:
                i = hot[int(draw() * len(hot))]
            else:
                i = int(draw() * n)
            a = assignment[i]
            foreign = [assignment[v] for v in adjacency[i] if assignment[v] != a]
            if not foreign or fixed[i]:
                continue
            if i == self.staffing.sites[a] and not (hires_only[a] and len(self.members[a]) > 1):
                continue
            b = foreign[int(draw() * len(foreign))]
            gained = int(conflicts[b, i]) - int(conflicts[a, i])
            m = unit_load[i]
            load_a = [x - y for x, y in zip(load[a], m)]
            load_b = [x + y for x, y in zip(load[b], m)]
            viol_a, viol_b = violation_of(a, load_a), violation_of(b, load_b)
            delta = gained + weight * (viol_a + viol_b - violation[a] - violation[b])
            if delta > 0 and draw() >= math.exp(-delta / temperature):
                continue
            if not self._connected_without(a, i):
                continue
            conflicts[a] -= far[i]
            conflicts[b] += far[i]
            total += gained
            self._apply(i, a, b)
            self._fix_site(a)
            load[a], load[b] = load_a, load_b
            violation[a], violation[b] = viol_a, viol_b
            if total:
                own = conflicts[self.assignment, everything]
                hot = np.flatnonzero(own).tolist()
            else:
                hot = []
            if not total and sum(violation) <= 1e-12 and self._balanced():
                self.diam = diameters(self.dist, self.assignment, self.T)
                key = self.key()
                if key < best_key:
                    best_key, best_assignment = key, self.assignment.copy()
                    far, conflicts, total, hot = retarget(best_key[0] * SHRINK, assignment)
                    stale = 0
        self.iterations += moves
        self.best_key = best_key
        self._restore(best_assignment)
        return self.staffing, self.assignment

    def _balanced(self) -> bool:
        """Balance checked exactly, in the measures' own units (the search's sums drift)."""
        load = np.zeros_like(self.load)
        np.add.at(load, self.assignment, self.problem.measures)
        return bool((load >= self.lower - 1e-9).all() and (load <= self.upper + 1e-9).all())

    def _fix_site(self, t: int) -> None:
        """A hires-only territory whose site left moves its base to its most central unit."""
        site = int(self.staffing.sites[t])
        if site in self.members[t]:
            return
        members = np.fromiter(self.members[t], dtype=np.int64)
        taken = set(int(s) for s in self.staffing.sites)
        options = members[(self.room[members] >= self.staffing.hires[t])
                          & ~np.isin(members, list(taken))]
        if not len(options):
            raise SpecificationError("a territory lost its site and has no other unit with room "
                                     "for its hires")
        eccentricity = self.dist[np.ix_(options, members)].max(axis=1)
        self.staffing.sites[t] = int(options[int(np.argmin(eccentricity))])

    def _restore(self, assignment: np.ndarray) -> None:
        self.assignment = assignment.copy()
        self.labels = self.assignment.tolist()
        self.load[:] = 0
        np.add.at(self.load, self.assignment, self.problem.measures)
        self.members = [set(np.flatnonzero(self.assignment == t).tolist()) for t in range(self.T)]
        self.diam = diameters(self.dist, self.assignment, self.T)
        for t in range(self.T):
            self._fix_site(t)
