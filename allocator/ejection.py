"""Ejection chains: restore balance by passing border units along a path of territories.

After a departure the departed rep's units land on the neighbours, which are then over their
balance ceiling; and with one rep fewer the mean per rep rises, so territories that sat at the
floor of the band fall below it. Often no single move helps: every neighbour of an over-loaded
territory is itself full. A chain ``t0 -> t1 -> ... -> tk`` moves one border unit per hop
(``t0`` gives a unit to ``t1``, which gives one to ``t2``, ...) until a territory with room
takes the last one; a *pull* chain runs the other way for a territory below the floor. Each hop
keeps both territories connected, and no territory in the chain may end further out of balance
than it was.

The search is best-first on the disruption the chain adds (a unit leaving its owner costs its
measure, a unit going back to its owner earns it back), so the cheapest chain that lowers the
total balance violation is applied first; chains are applied until the plan is balanced, the
disruption cap would be exceeded, or no chain helps. It needs no solver and finishes in seconds
on thousands of units, where an exact re-solve of the dozen territories a chain crosses may not
finish at all; exact re-solves can then reduce the moves further in the time that is left.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np

from allocator import clock
from allocator.alignment import AlignmentProblem, LocalSearch, Staffing

EPS = 1e-9


@dataclass(frozen=True)
class Hop:
    """One unit passed from territory ``source`` to the adjacent territory ``target``."""

    unit: int
    source: int
    target: int


def disruption_step(owner: np.ndarray, cost: np.ndarray, unit: int, source: int,
                    target: int) -> int:
    """Disruption added by moving ``unit`` from ``source`` to ``target``: ``cost[unit]`` when it
    leaves its ``owner``, minus that when it comes back."""
    home = owner[unit]
    return (0 if target == home else int(cost[unit])) - (0 if source == home else int(cost[unit]))


class DisruptionRepair:
    """An assignment under repair, with its disruption counted against ``owner`` (the territory
    each unit belongs to in the parent plan, ``-1`` if none) in the whole-number measure ``cost``
    (``cost[i]`` when unit ``i`` is away from its owner), within ``cap``."""

    def __init__(self, problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                 owner: np.ndarray, cost: np.ndarray, cap: int, contiguity: bool = True) -> None:
        self.problem = problem
        self.staffing = staffing
        self.local = LocalSearch(problem, staffing, assignment, contiguity)
        self.owner = owner
        self.cost = cost
        self.cap = cap
        self.contiguity = contiguity

    @property
    def assignment(self) -> np.ndarray:
        return self.local.assignment

    def disruption(self) -> int:
        return int(self.cost[self.local.assignment != self.owner].sum())

    def violation(self) -> float:
        return self.local.violation()


class ChainRepair(DisruptionRepair):
    """Balance repair by ejection chains (module docstring)."""

    def __init__(self, problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                 owner: np.ndarray, cost: np.ndarray, cap: int, contiguity: bool = True,
                 max_depth: int = 10, max_expansions: int = 4000, branching: int = 4) -> None:
        super().__init__(problem, staffing, assignment, owner, cost, cap, contiguity)
        self.max_depth = max_depth
        self.max_expansions = max_expansions
        self.branching = branching
        self.chains = 0
        self.hops = 0

    def _territory_violation(self, t: int, load: np.ndarray) -> float:
        return self.local._viol(t, load)

    def _cost_of(self, unit: int, source: int, target: int) -> int:
        return disruption_step(self.owner, self.cost, unit, source, target)

    def _connected(self, t: int, added: set[int], removed: set[int]) -> bool:
        """Whether territory ``t`` is connected with ``added`` units in and ``removed`` out."""
        if not self.contiguity:
            return True
        members = (self.local.members[t] | added) - removed
        root = int(self.staffing.sites[t])
        if root not in members:
            return False
        seen = {root}
        queue = deque([root])
        adjacency = self.problem.adjacency
        while queue:
            u = queue.popleft()
            for v in adjacency[u]:
                v = int(v)
                if v not in seen and v in members:
                    seen.add(v)
                    queue.append(v)
        return len(seen) == len(members)

    # -- one chain ----------------------------------------------------------------------------
    def best_chain(self, seed: int) -> list[Hop] | None:
        """The chain of least added disruption (then largest balance gain) that starts at the
        out-of-balance territory ``seed`` and lowers the total violation; None if none is found
        within the search limits or the cap."""
        local = self.local
        measures = self.problem.measures
        load0 = local.load
        over = bool((load0[seed] > local.upper[seed] + EPS).any())
        under = bool((load0[seed] < local.lower[seed] - EPS).any())
        if over == under:  # in balance, or over in one measure and under in another
            return None
        push = over
        room = self.cap - self.disruption()
        start_violation = {seed: self._territory_violation(seed, load0[seed])}
        best: tuple[tuple[float, float], list[Hop]] | None = None
        # queue entries: (added disruption, depth, tie, hops, open territory)
        counter = 0
        queue: list[tuple[int, int, int, tuple[Hop, ...], int]] = [(0, 0, 0, (), seed)]
        expansions = tried = 0
        while queue and expansions < self.max_expansions:
            added, depth, _, hops, t = heapq.heappop(queue)
            if best is not None and added > best[0][0]:
                break
            expansions += 1
            used = {h.source for h in hops} | {h.target for h in hops} | {seed}
            moved_to = {h.unit: h.target for h in hops}
            # the chain's effect so far on loads and memberships
            delta: dict[int, np.ndarray] = {}
            plus: dict[int, set[int]] = {}
            minus: dict[int, set[int]] = {}
            for h in hops:
                delta[h.source] = delta.get(h.source, 0) - measures[h.unit]
                delta[h.target] = delta.get(h.target, 0) + measures[h.unit]
                minus.setdefault(h.source, set()).add(h.unit)
                plus.setdefault(h.target, set()).add(h.unit)
            load_t = load0[t] + delta.get(t, 0)
            for hop in self._candidates(t, push, used, moved_to, plus, minus, load_t):
                tried += 1
                giver, taker = hop.source, hop.target
                step = self._cost_of(hop.unit, giver, taker)
                total = added + step
                if total > room:
                    continue
                chain = (*hops, hop)
                new_load = {giver: load0[giver] + delta.get(giver, 0) - measures[hop.unit],
                            taker: load0[taker] + delta.get(taker, 0) + measures[hop.unit]}
                touched = {h.source for h in chain} | {h.target for h in chain}
                before = after = 0.0
                for u in touched:
                    load_u = new_load.get(u, load0[u] + delta.get(u, 0))
                    before += self._territory_violation(u, load0[u])
                    after += self._territory_violation(u, load_u)
                gain = before - after
                nxt = taker if push else giver
                if gain > 1e-9:
                    key = (float(total), -gain)
                    if best is None or key < best[0]:
                        best = (key, list(chain))
                    continue
                if depth + 1 >= self.max_depth:
                    continue
                # the territory handing on keeps its own balance: only the open end may worsen
                settled = giver if push else taker
                base = start_violation.get(settled, self._territory_violation(
                    settled, load0[settled]))
                if self._territory_violation(settled, new_load[settled]) > base + 1e-9:
                    continue
                counter += 1
                heapq.heappush(queue, (total, depth + 1, counter, chain, nxt))
        # the work clock: each hop tried costs about what a local-search move does, and each
        # territory expanded a scan of its border
        clock.charge_moves(tried + 10 * expansions)
        return None if best is None else best[1]

    def _candidates(self, t: int, push: bool, used: set[int], moved_to: dict[int, int],
                    plus: dict[int, set[int]], minus: dict[int, set[int]],
                    load_t: np.ndarray) -> list[Hop]:
        """The most promising hops out of (push) or into (pull) the open territory ``t``:
        cheapest in disruption, then the unit that best fits what ``t`` has to shed or take."""
        local = self.local
        measures = self.problem.measures
        adjacency = self.problem.adjacency
        scale = local.scale
        if push:
            need = (load_t - local.upper[t]) / scale  # what t must shed, per measure
        else:
            need = (local.lower[t] - load_t) / scale  # what t must take
        need_main = float(need.max())
        members = (local.members[t] | plus.get(t, set())) - minus.get(t, set())
        triples: list[tuple[int, int, int]] = []
        for i in members:
            for v in adjacency[i]:
                v = int(v)
                if v in members:
                    continue
                other = moved_to.get(v, int(local.assignment[v]))
                if other in used:
                    continue
                if push and not local.fixed[i] and i not in moved_to:
                    triples.append((i, t, other))
                elif not push and not local.fixed[v] and v not in moved_to:
                    triples.append((v, other, t))
        options: list[tuple[tuple, Hop]] = []
        for unit, source, target in set(triples):
            weight = float((measures[unit] / scale).max())
            fit = (0, weight - need_main) if weight >= need_main - 1e-12 else (1, -weight)
            key = (self._cost_of(unit, source, target), fit, unit, source, target)
            options.append((key, Hop(unit, source, target)))
        options.sort(key=lambda item: item[0])
        chosen: list[Hop] = []
        per_neighbour: dict[int, int] = {}
        for _, hop in options:
            other = hop.target if push else hop.source
            if per_neighbour.get(other, 0) >= 2:
                continue
            if not self._hop_keeps_connected(hop, plus, minus):
                continue
            chosen.append(hop)
            per_neighbour[other] = per_neighbour.get(other, 0) + 1
            if len(chosen) >= self.branching * 2:
                break
        return chosen

    def _hop_keeps_connected(self, hop: Hop, plus: dict[int, set[int]],
                             minus: dict[int, set[int]]) -> bool:
        source_ok = self._connected(hop.source, plus.get(hop.source, set()),
                                    minus.get(hop.source, set()) | {hop.unit})
        if not source_ok:
            return False
        # the target gains a unit adjacent to it; it stays connected unless it lost the member
        # that unit touches earlier in the chain
        return self._connected(hop.target, plus.get(hop.target, set()) | {hop.unit},
                               minus.get(hop.target, set()))

    # -- the repair ---------------------------------------------------------------------------
    def apply(self, chain: list[Hop]) -> None:
        for hop in chain:
            self.local.move(hop.unit, hop.target)
        self.chains += 1
        self.hops += len(chain)

    def repair(self, deadline: float) -> np.ndarray:
        """Apply cheapest chains, most violated territory first, until balanced or stuck."""
        stuck: set[int] = set()
        while clock.now() < deadline and self.violation() > EPS:
            local = self.local
            over = (np.maximum(local.load - local.upper, 0) +
                    np.maximum(local.lower - local.load, 0))
            per_territory = (over / local.scale).sum(axis=1)
            seeds = [int(t) for t in np.argsort(-per_territory, kind="stable")
                     if per_territory[t] > EPS and int(t) not in stuck]
            if not seeds:
                break
            for seed in seeds:
                if clock.now() >= deadline:
                    break
                chain = self.best_chain(seed)
                if chain is None:
                    stuck.add(seed)
                    continue
                self.apply(chain)
                stuck.clear()  # the map changed: chains that failed may work now
                break
        return self.local.assignment.copy()

    def return_home(self) -> int:
        """Move units back to their owner wherever that keeps balance and contiguity: moves the
        chains made that later chains made unnecessary. Returns the number of units returned."""
        local = self.local
        returned = 0
        changed = True
        while changed:
            changed = False
            away = np.flatnonzero((local.assignment != self.owner) & (self.owner >= 0)
                                  & ~local.fixed)
            for i in sorted(away.tolist(), key=lambda u: -int(self.cost[u])):
                home = int(self.owner[i])
                here = int(local.assignment[i])
                if not any(int(local.assignment[v]) == home for v in self.problem.adjacency[i]):
                    continue
                a = self.problem.measures[i]
                before = (self._territory_violation(here, local.load[here]) +
                          self._territory_violation(home, local.load[home]))
                after = (self._territory_violation(here, local.load[here] - a) +
                         self._territory_violation(home, local.load[home] + a))
                if after > before + 1e-12 or not local.connected_without(here, i):
                    continue
                local.move(i, home)
                returned += 1
                changed = True
        return returned
