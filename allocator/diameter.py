"""Min-max diameter compactness: the largest territory diameter, and a search that lowers it.

The diameter of a territory is ``max_{i, j in t} D_ij``. ``D`` is the shortest-path distance over
the adjacency graph by edge length when the edges carry lengths (``adjacency.length``), else the
straight-line distance between units. The search keeps every plan balanced (every measure within
its bounds) and contiguous, and anneals

    F = sum_t (diam_t / D0) ** P

over moves of one boundary unit to an adjacent territory and swaps of two units across a border.
A large ``P`` makes ``F`` follow the largest diameter while still rewarding progress in the
others, which is what frees room for the next step on the largest. The best plan seen, by
(largest diameter, sum of diameters), is returned.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from allocator.alignment import AlignmentProblem, Staffing
from allocator.exceptions import SpecificationError
from allocator.scenario import Scenario

MAX_UNITS = 8000  # the distance matrix is n x n floats
import os
POWER = float(os.environ.get("DT_P", 8))
T0 = float(os.environ.get("DT_T0", 0.05))
T1 = float(os.environ.get("DT_T1", 1e-4))


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
    """Simulated annealing on territory diameters under balance and contiguity."""

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

    def _score(self, d: float) -> float:
        return (d / self.scale) ** POWER

    def _diameter_without(self, t: int, i: int) -> float:
        members = self.members[t]
        if len(members) <= 2:
            return 0.0
        rest = np.fromiter((u for u in members if u != i), dtype=np.int64)
        if self.dist[i, rest].max() < self.diam[t] - 1e-12:
            return float(self.diam[t])
        return float(self.dist[np.ix_(rest, rest)].max())

    def _diameter_with(self, t: int, i: int, without: int = -1) -> float:
        rest = np.fromiter((u for u in self.members[t] if u != without), dtype=np.int64)
        base = self.diam[t] if without < 0 else float(self.dist[np.ix_(rest, rest)].max()) \
            if len(rest) > 1 else 0.0
        return max(base, float(self.dist[i, rest].max())) if len(rest) else 0.0

    def _connected_without(self, t: int, leaving: set[int], joining: int = -1) -> bool:
        members = self.members[t]
        left = [u for u in members if u not in leaving]
        if joining >= 0:
            left.append(joining)
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

    def _apply(self, i: int, a: int, b: int, diam_a: float, diam_b: float) -> None:
        m = self.problem.measures[i]
        self.members[a].discard(i)
        self.members[b].add(i)
        self.load[a] -= m
        self.load[b] += m
        self.assignment[i] = b
        self.diam[a], self.diam[b] = diam_a, diam_b

    # -- search -------------------------------------------------------------------------------
    def _violation(self, t: int, load: np.ndarray) -> float:
        over = np.maximum(load - self.upper[t], 0) + np.maximum(self.lower[t] - load, 0)
        return float((over / self.omega).sum())

    def run(self, deadline: float, start_temperature: float = T0,
            end_temperature: float = T1) -> tuple[Staffing, np.ndarray]:
        """Anneal until ``deadline``; balance is a penalty whose weight oscillates (raised while
        the plan is out of balance, lowered while it is in), so that the search can cross
        between balanced plans that no single balanced move connects."""
        best_key, best_assignment = self.key(), self.assignment.copy()
        measures = self.problem.measures
        self.omega = measures.sum(axis=0) / self.staffing.headcount
        violation = np.array([self._violation(t, self.load[t]) for t in range(self.T)])
        weight = 30.0
        started = time.perf_counter()
        span = max(deadline - started, 1e-3)
        temperature = start_temperature
        since_best = 0
        rng = self.rng
        while True:
            self.iterations += 1
            if self.iterations % 256 == 0:
                now = time.perf_counter()
                if now >= deadline:
                    break
                progress = (now - started) / span
                temperature = start_temperature * (end_temperature / start_temperature) ** progress
                weight = weight * 1.15 if violation.sum() > 1e-12 else max(weight / 1.1, 1.0)
                if since_best > 200_000:  # long without a better balanced plan: go back to it
                    self._restore(best_assignment)
                    violation = np.array([self._violation(t, self.load[t])
                                          for t in range(self.T)])
                    since_best = 0
            since_best += 1
            # half the time from a territory of large diameter, else from anywhere
            if rng.random() < 0.5:
                chance = (self.diam / self.scale) ** 4 + 1e-3
                a = int(rng.choice(self.T, p=chance / chance.sum()))
                members = np.fromiter(self.members[a], dtype=np.int64)
                if len(members) <= 1:
                    continue
                # its far-out units are the ones whose leaving shrinks the diameter
                reach = self.dist[np.ix_(members, members)].max(axis=1) / self.diam[a]
                chance = reach ** 16
                i = int(members[rng.choice(len(members), p=chance / chance.sum())])
            else:
                i = int(rng.integers(self.problem.n))
                a = int(self.assignment[i])
            foreign = [int(self.assignment[v]) for v in self.adjacency[i]
                       if self.assignment[v] != a]
            if not foreign or self.fixed[i] or not self._site_ok(a, i):
                continue
            b = foreign[int(rng.integers(len(foreign)))]
            m = measures[i]
            viol_a = self._violation(a, self.load[a] - m)
            viol_b = self._violation(b, self.load[b] + m)
            diam_a = self._diameter_without(a, i)
            diam_b = self._diameter_with(b, i)
            delta = (self._score(diam_a) + self._score(diam_b)
                     - self._score(self.diam[a]) - self._score(self.diam[b])
                     + weight * (viol_a + viol_b - violation[a] - violation[b]))
            if delta > 0 and rng.random() >= math.exp(-delta / temperature):
                continue
            if not self._connected_without(a, {i}):
                continue
            self._apply(i, a, b, diam_a, diam_b)
            self._fix_site(a)
            violation[a], violation[b] = viol_a, viol_b
            if violation[a] + violation[b] <= 1e-12 and violation.sum() <= 1e-12:
                key = self.key()
                if key < best_key:
                    best_key, best_assignment = key, self.assignment.copy()
                    since_best = 0
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
