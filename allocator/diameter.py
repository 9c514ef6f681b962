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
from collections import deque

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from allocator import clock
from allocator.alignment import AlignmentProblem, Staffing
from allocator.exceptions import SpecificationError
from allocator.scenario import Scenario

MAX_UNITS = 8000  # the distance matrix is n x n floats
# annealing of conflicts + weight x balance violation (violation in means per rep)
TEMPERATURE = 0.3  # a move adding one conflict is taken about once in 28 tries
WEIGHT_START, WEIGHT_MIN, WEIGHT_STEP = 50.0, 5.0, 1.02
STALE = 100_000  # moves without a better plan before going back to the best one
SECONDS_PER_MOVE = 1.7e-5  # one tried move, on the 2-core reference machine


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

    # -- state ------------------------------------------------------------------------------
    def max_diameter(self) -> float:
        return float(self.diam.max())

    def key(self) -> tuple[float, float]:
        return float(self.diam.max()), float(self.diam.sum())

    def _connected_without(self, t: int, leaving: int) -> bool:
        left = [u for u in self.members[t] if u != leaving]
        if len(left) <= 1:
            return len(left) == 1
        allowed = set(left)
        seen = {left[0]}
        queue = deque([left[0]])
        while queue:
            u = queue.popleft()
            for v in self.adjacency[u]:
                if v in allowed and v not in seen:
                    seen.add(v)
                    queue.append(v)
        return len(seen) == len(allowed)

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

    # -- search -------------------------------------------------------------------------------
    def _violation(self, t: int, load: np.ndarray) -> float:
        over = np.maximum(load - self.upper[t], 0) + np.maximum(self.lower[t] - load, 0)
        return float((over / self.omega).sum())

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
        """
        measures = self.problem.measures
        self.omega = measures.sum(axis=0) / self.staffing.headcount
        violation = np.array([self._violation(t, self.load[t]) for t in range(self.T)])
        # an unbalanced start is no plan: the search first brings it into balance
        best_key = self.key() if violation.sum() <= 1e-12 else (math.inf, math.inf)
        best_assignment = self.assignment.copy()
        rng = self.rng
        n = self.problem.n

        def retarget() -> tuple[np.ndarray, np.ndarray]:
            far = self.dist > best_key[0] * (1 - 1e-4)  # conflicts of the next target
            counts = np.zeros(n, dtype=np.int64)
            for t in range(self.T):
                members = np.fromiter(self.members[t], dtype=np.int64)
                counts[members] = far[np.ix_(members, members)].sum(axis=1)
            return far, counts

        far, conflict = retarget()
        weight, temperature = WEIGHT_START, TEMPERATURE
        stale = 0
        while True:
            self.iterations += 1
            if self.iterations % 256 == 0:
                clock.charge(256 * SECONDS_PER_MOVE)
                if clock.now() >= deadline:
                    break
                weight = (weight * WEIGHT_STEP if violation.sum() > 1e-12
                          else max(weight / WEIGHT_STEP, WEIGHT_MIN))
                if stale > STALE:  # lost: back to the best plan
                    self._restore(best_assignment)
                    violation = np.array([self._violation(t, self.load[t])
                                          for t in range(self.T)])
                    far, conflict = retarget()
                    stale = 0
            stale += 1
            hot = np.flatnonzero(conflict)
            if len(hot) and rng.random() < 0.7:
                i = int(hot[rng.integers(len(hot))])
            else:
                i = int(rng.integers(n))
            a = int(self.assignment[i])
            foreign = [int(self.assignment[v]) for v in self.adjacency[i]
                       if self.assignment[v] != a]
            if not foreign or self.fixed[i] or not self._site_ok(a, i):
                continue
            b = foreign[int(rng.integers(len(foreign)))]
            m = measures[i]
            members_b = np.fromiter(self.members[b], dtype=np.int64)
            gained = int(far[i, members_b].sum())
            viol_a = self._violation(a, self.load[a] - m)
            viol_b = self._violation(b, self.load[b] + m)
            delta = (gained - conflict[i]
                     + weight * (viol_a + viol_b - violation[a] - violation[b]))
            if delta > 0 and rng.random() >= math.exp(-delta / temperature):
                continue
            if not self._connected_without(a, i):
                continue
            members_a = np.fromiter(self.members[a], dtype=np.int64)
            conflict[members_a] -= far[i, members_a]
            conflict[members_b] += far[i, members_b]
            conflict[i] = gained
            self._apply(i, a, b)
            self._fix_site(a)
            violation[a], violation[b] = viol_a, viol_b
            if not conflict.any() and violation.sum() <= 1e-12:
                self.diam = diameters(self.dist, self.assignment, self.T)
                key = self.key()
                if key < best_key:
                    best_key, best_assignment = key, self.assignment.copy()
                    far, conflict = retarget()
                    stale = 0
        self._restore(best_assignment)
        return self.staffing, self.assignment

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
        self.load[:] = 0
        np.add.at(self.load, self.assignment, self.problem.measures)
        self.members = [set(np.flatnonzero(self.assignment == t).tolist()) for t in range(self.T)]
        self.diam = diameters(self.dist, self.assignment, self.T)
        for t in range(self.T):
            self._fix_site(t)
