"""Least-moves balance repair over the whole map: plan the transfers, then make them.

A departure does two things to a large map. Its units must go to the neighbours, which may
then be over their ceiling; and the mean per rep rises, so territories that sat at the floor of
the band anywhere on the map are now below it. Fixing each territory on its own (ejection
chains, :mod:`allocator.ejection`) makes many moves where a plan of the whole map makes few.

Two levels:

1. **Plan** (:func:`plan_transfers`): a small integer model on the *territory* graph. For each
   ordered pair of adjacent territories ``(u, v)``, ``f_uv`` is the workload ``u`` passes to
   ``v`` (thousandths of the mean per rep, whole numbers, so every solver takes it); each unit
   of ``u`` on the border with ``v`` whose leaving keeps ``u`` connected is a binary choice
   ``z_iuv`` with its exact workload ``a_i``, and so is each unit one step further in (only
   after a chosen unit next to it)::

       minimise   sum_iuv c_i z_iuv  +  eps sum_uv f_uv  +  P sum_t s_t
       subject to lo_t - s_t <= L_t - sum_v f_tv + sum_u f_ut <= hi_t + s_t   (balance)
                  f_uv = sum_i a_i z_iuv + g_uv,   0 <= g_uv <= F_uv       (border carries)
                  z_juv <= sum_{i next to j} z_iuv                         (next layer in)
                  sum_v z_iuv <= 1                                          (moves once)
                  sum_iuv c_i z_iuv <= cap left                             (disruption cap)

   ``L_t`` is the load now, ``[lo_t, hi_t]`` the balance band (optionally tightened by a
   margin where the territory has to move anyway; the repair uses none, so that the solver's
   bound holds for the band itself, to a thousandth of the mean); ``F_uv`` is what
   ``u`` can hand to ``v`` at no disruption (units that change owner whatever happens, e.g. a
   departed rep's block, or units going back to ``v`` their owner) and ``c_i`` a unit's
   disruption (1 when counting units). A chain through many territories pays at every border,
   so the model prefers short ones and finds the few territories with room that serve many
   in need. The solver's dual bound is then a proven lower bound on the paid moves of any plan
   *of this kind*: whole units, each leaving its territory connected, passed across the
   borders of the territory graph, up to ``depth`` units in from a border (behind the
   largest units on it). ``s_t`` is elastic slack, priced above any set of moves, so that a
   plan always exists.

2. **Make** (:class:`TransferRepair`): each planned flow becomes moves of the chosen units,
   territories that only give first, then free units matched to the rest of the flow; every
   move keeps both territories connected (a unit that alone holds a free block to its base
   takes the block with it). The plan is re-made from the new map while that helps (a chosen
   unit that could not move is left to it); ejection chains then fix what is left over, and
   every move that balance no longer needs is undone (a unit goes back to its owner where
   that keeps balance and contiguity).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pulp

from allocator import clock
from allocator.alignment import AlignmentProblem, LocalSearch, Staffing
from allocator.ejection import ChainRepair, DisruptionRepair, disruption_step
from allocator.improve import territory_graph
from allocator.solvers import solve_counted

EPS = 1e-9
PER_MEAN = 1000.0  # flows and loads in thousandths of the mean per rep
# how far in from a border a plan may take units, deepest first (a shallower, smaller model
# when the deeper one found no plan within its work): on the demo, after a departure whose
# neighbours hold only small units, 4 layers plan 62 moves where 2 plan 86
PLAN_DEPTHS = (4, 2, 1)


@dataclass(frozen=True)
class Transfer:
    """Planned: territory ``source`` passes ``workload`` (in means per rep, first balance
    measure) to the adjacent territory ``target``: the units ``chosen``, and ``loose``
    workload in units that move at no disruption (matched unit by unit when it is made)."""

    source: int
    target: int
    workload: float
    chosen: tuple[int, ...] = ()
    loose: float = 0.0


@dataclass(frozen=True)
class TransferPlan:
    transfers: tuple[Transfer, ...]
    planned_moves: int  # paid moves the plan expects
    slack: float  # balance the plan could not reach (means per rep)
    status: str
    bound: float | None = None  # the solver's bound on the moves' disruption, in units of
    # the mean disruption of a paid move (paid moves when counting units); None if unknown
    depth: int = 0  # how far in from a border the plan could take units


def _border_units(local: LocalSearch, adjacency, u: int, v: int) -> list[int]:
    """Units of ``u`` touching ``v`` that may move (not a base, not locked)."""
    out = []
    members_v = local.members[v]
    for i in local.members[u]:
        if local.fixed[i]:
            continue
        if any(int(w) in members_v for w in adjacency[i]):
            out.append(int(i))
    return out


def plan_transfers(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                   owner: np.ndarray, cost: np.ndarray, cap_left: int, solver: str, *,
                   margin: float = 0.002, time_limit: float = 10.0, seed: int = 0,
                   threads: int = 1, contiguity: bool = True, top_units: int = 6,
                   depth: int = 2) -> TransferPlan:
    """The least-disruption transfers between adjacent territories that bring every territory
    into its balance band (the model in the module docstring), solved with ``solver``.

    ``cost[i]`` is the whole-number disruption of unit ``i`` away from ``owner[i]``; ``cap_left``
    what the cap still allows; ``margin`` (share of the mean per rep) tightens the band of a
    territory that has to change anyway, so whole units can land inside it.
    """
    local = LocalSearch(problem, staffing, assignment, contiguity)
    T = len(staffing.sites)
    M = problem.measures.shape[1]
    graph = territory_graph(problem, assignment, T)
    weight = problem.measures / local.scale * PER_MEAN  # (n, M) thousandths of the mean
    load = local.load / local.scale * PER_MEAN
    n_reps = staffing.n_reps.astype(float)
    lower = local.lower / local.scale * PER_MEAN
    upper = local.upper / local.scale * PER_MEAN
    pad = margin * PER_MEAN * n_reps[:, None]
    # tighten only where it asks for no new move: a territory inside its band stays as free
    low = np.where(load < lower, lower + pad, np.minimum(lower + pad, load))
    high = np.where(load > upper, upper - pad, np.maximum(upper - pad, load))
    low = np.maximum(low, lower)
    high = np.minimum(high, upper)
    paid_scale = float(np.mean(cost[cost > 0])) if (cost > 0).any() else 1.0
    model = pulp.LpProblem("transfers", pulp.LpMinimize)
    flow: dict[tuple[int, int, int], pulp.LpVariable] = {}
    count: dict[tuple[int, int], pulp.LpVariable] = {}
    unit_cost: dict[tuple[int, int], float] = {}
    detail: dict[tuple[int, int], tuple[list[int], list]] = {}
    choices: dict[int, list[pulp.LpVariable]] = {}  # a unit's choices, one per neighbour
    for u in range(T):
        for v in sorted(graph[u]):
            border = _border_units(local, problem.adjacency, u, v)
            if not border:
                continue
            steps = np.array([disruption_step(owner, cost, i, u, v) for i in border])
            free = _free_capacity(local, problem.adjacency, owner, cost, u, v, border, steps,
                                  weight)
            # a unit whose leaving would cut its territory in two is no choice of its own
            paid = [i for i, s in zip(border, steps, strict=True)
                    if s > 0 and local.connected_without(u, i)]
            inner = [i for i in local.members[u] if not local.fixed[i]]
            c = float(np.mean(cost[paid])) / paid_scale if paid else 1.0
            unit_cost[u, v] = max(0.01, round(c, 2))
            # each paid border unit is a choice of its own, its workload known exactly; only
            # the ``top_units`` largest on each border (fewest moves for the workload; a model
            # small enough to solve in seconds), and units further in become border units for
            # the next round's plan
            paid.sort(key=lambda i: -float(weight[i, 0]))
            paid = paid[:top_units]
            picks = [pulp.LpVariable(f"z_{u}_{v}_{j}", cat="Binary") for j in range(len(paid))]
            layer = {i: z for i, z in zip(paid, picks, strict=True)}
            taken = set(border)
            for _ in range(depth - 1):  # the next layer in: each only after a unit next to it
                taken |= set(layer)
                inner_layer = sorted({int(b) for i in layer for b in problem.adjacency[i]
                                      if int(b) in local.members[u] and int(b) not in taken
                                      and not local.fixed[int(b)]
                                      and disruption_step(owner, cost, int(b), u, v) > 0
                                      and local.connected_without(u, int(b))})
                following = {}
                for j in inner_layer:
                    z = pulp.LpVariable(f"z_{u}_{v}_{len(paid)}", cat="Binary")
                    model += z <= pulp.lpSum(layer[i] for i in problem.adjacency[j]
                                             if int(i) in layer), f"after_{u}_{v}_{j}"
                    paid.append(j)
                    picks.append(z)
                    following[j] = z
                layer = following
            count[u, v] = pulp.lpSum(picks)
            detail[u, v] = (paid, picks)
            for i, z in zip(paid, picks, strict=True):
                choices.setdefault(i, []).append(z)
            for m in range(M):
                top = int(np.floor(weight[inner, m].sum()))
                f = pulp.LpVariable(f"f_{u}_{v}_{m}", 0, top, cat="Integer")
                flow[u, v, m] = f
                # the flow is what the chosen units carry, plus part of what the free units do
                loose = pulp.LpVariable(f"g_{u}_{v}_{m}", 0, top)
                model += (f == pulp.lpSum(int(round(weight[i, m])) * z
                                          for i, z in zip(paid, picks, strict=True)) + loose), \
                    f"carry_{u}_{v}_{m}"
                model += loose <= int(np.floor(free[m])), f"loose_{u}_{v}_{m}"
    for i, options in choices.items():
        if len(options) > 1:
            model += pulp.lpSum(options) <= 1, f"once_{i}"
    slack = {}
    for t in range(T):
        for m in range(M):
            out = pulp.lpSum(flow[t, v, m] for v in graph[t] if (t, v, m) in flow)
            into = pulp.lpSum(flow[u, t, m] for u in graph[t] if (u, t, m) in flow)
            lo = int(np.ceil(low[t, m] - load[t, m] - 1e-9))
            hi = int(np.floor(high[t, m] - load[t, m] + 1e-9))
            if lo > hi:  # a band narrower than a thousandth: keep the current load
                lo = hi = 0
            s = pulp.LpVariable(f"s_{t}_{m}", 0, max(lo, -hi, 0), cat="Integer")
            s.setInitialValue(max(lo, -hi, 0))  # the start: nothing moves, imbalance in slack
            slack[t, m] = s
            model += into - out + s >= lo, f"low_{t}_{m}"
            model += into - out - s <= hi, f"high_{t}_{m}"
    moves = pulp.lpSum(unit_cost[a] * k for a, k in count.items())
    paid_units = pulp.lpSum(count.values())
    if np.isfinite(cap_left):
        # in the cap's measure: a paid move costs about the border's typical disruption
        model += pulp.lpSum(float(unit_cost[a] * paid_scale) * k
                            for a, k in count.items()) <= max(0, int(cap_left)), "cap"
    # a thousandth of the mean left out of balance costs more than a move through every
    # territory: slack is the last resort
    model += (1000.0 * moves + 0.01 * pulp.lpSum(flow.values())
              + 1000.0 * (T + 1) * pulp.lpSum(slack.values()))
    for var in model.variables():
        if not var.name.startswith("s_"):
            var.setInitialValue(0)
    outcome = solve_counted(model, solver, work=time_limit, gap=1e-6, seed=seed,
                            threads=threads)
    if outcome.objective is None:
        return TransferPlan((), 0, float("nan"), outcome.status, depth=depth)
    transfers = []
    for (u, v), (paid, picks) in detail.items():
        f = float(flow[u, v, 0].varValue or 0.0)
        if f <= 0.5:
            continue
        chosen = tuple(i for i, z in zip(paid, picks, strict=True) if (z.varValue or 0.0) > 0.5)
        loose = max(0.0, f / PER_MEAN - float(weight[list(chosen), 0].sum()) / PER_MEAN)
        transfers.append(Transfer(u, v, f / PER_MEAN, chosen, loose))
    left = sum(float(s.varValue or 0.0) for s in slack.values()) / PER_MEAN
    # the bound less the flows' tie-break as the plan found them: the solver's bound on
    # paid moves, up to that tie-break (a few hundredths of a move)
    bound = None if outcome.bound is None else max(0.0, (outcome.bound - 0.01 * sum(
        float(f.varValue or 0.0) for f in flow.values())) / 1000.0)
    return TransferPlan(tuple(transfers), round(pulp.value(paid_units) or 0), left,
                        outcome.status, bound, depth)


def _free_capacity(local: LocalSearch, adjacency, owner: np.ndarray, cost: np.ndarray, u: int,
                   v: int, border: list[int], steps: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Workload ``u`` can pass to ``v`` at no disruption: the free units on the border and the
    free units of ``u`` connected to them (a departed rep's block moves whole, unit by unit)."""
    seeds = [i for i, s in zip(border, steps, strict=True) if s <= 0]
    if not seeds:
        return np.zeros(weight.shape[1])
    seen = set(seeds)
    queue = deque(seeds)
    members = local.members[u]
    while queue:
        i = queue.popleft()
        for w in adjacency[i]:
            w = int(w)
            if w in seen or w not in members or local.fixed[w]:
                continue
            if disruption_step(owner, cost, w, u, v) <= 0:
                seen.add(w)
                queue.append(w)
    return weight[sorted(seen)].sum(axis=0)


class TransferRepair(DisruptionRepair):
    """Balance repair by planned transfers (module docstring), counting disruption against
    ``owner`` with the whole-number measure ``cost``, within ``cap``."""

    def __init__(self, problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                 owner: np.ndarray, cost: np.ndarray, cap: int, solver: str, *,
                 contiguity: bool = True, seed: int = 0, threads: int = 1,
                 margin: float = 0.0, plan_seconds: float = 10.0,
                 depths: tuple[int, ...] = PLAN_DEPTHS) -> None:
        super().__init__(problem, staffing, assignment, owner, cost, cap, contiguity)
        self.depths = depths
        self.solver = solver
        self.seed = seed
        self.threads = threads
        self.margin = margin
        self.plan_seconds = plan_seconds
        self.plans: list[TransferPlan] = []
        self.moves = 0
        self.chain_moves = 0
        self.returned = 0

    def repair(self, deadline: float, rounds: int = 5) -> np.ndarray:
        """Plan and make transfers until balanced (or no round helps), then ejection chains for
        what is left, then undo the moves balance does not need."""
        for _ in range(rounds):
            left = deadline - clock.now()
            if self.violation() <= EPS or left < 1.0:
                break
            before = (self.violation(), self.disruption())
            saved = self.local.assignment.copy()
            # the first plan reaches deep; later rounds mend what is left near the borders
            depths = self.depths if not self.plans else tuple(d for d in self.depths if d <= 2)
            for depth in depths or self.depths[-1:]:  # smaller if no plan was found in time
                plan = plan_transfers(self.problem, self.staffing, self.local.assignment,
                                      self.owner, self.cost, self.cap - self.disruption(),
                                      self.solver, margin=self.margin, seed=self.seed,
                                      time_limit=max(0.5, min(self.plan_seconds, 0.3 * left)),
                                      threads=self.threads, contiguity=self.contiguity,
                                      depth=depth)
                if plan.transfers:
                    break
            self.plans.append(plan)
            if not plan.transfers:
                break
            self.make(plan)
            if self.disruption() > self.cap or self.violation() >= before[0] - EPS:
                self._reset(saved)  # the round did not help: keep what was before it
                break
        if self.violation() > EPS and clock.now() < deadline:
            chains = ChainRepair(self.problem, self.staffing, self.local.assignment, self.owner,
                                 self.cost, self.cap, self.contiguity)
            chains.repair(deadline)
            self.chain_moves += chains.hops
            self._reset(chains.assignment)
        self.undo_unneeded()
        return self.local.assignment.copy()

    def _reset(self, assignment: np.ndarray) -> None:
        self.local = LocalSearch(self.problem, self.staffing, assignment, self.contiguity)

    def make(self, plan: TransferPlan) -> None:
        """Turn each planned transfer into border-unit moves, territories that only give first
        (a chain hands on what it received)."""
        waiting: list[tuple[int, int, int, frozenset[int]]] = []
        leaving: dict[int, set[int]] = {}  # the units each territory gives, to any neighbour
        for transfer in plan.transfers:
            leaving.setdefault(transfer.source, set()).update(transfer.chosen)
        for transfer in _flow_order(plan.transfers, len(self.staffing.sites)):
            waiting += self._transfer(transfer, frozenset(leaving[transfer.source]))
        # units that could not move in their turn may now: the moves after them can have
        # joined them to their territory again, or to the one they go to
        for _ in range(2):
            waiting = [(i, u, v, group) for i, u, v, group in waiting
                       if not self._move_chosen(i, u, v, group)]
        # what still cannot move is left to the next round's plan, which sees the whole map
        # again: filling in with whatever small units are at hand costs more than it saves

    def _transfer(self, transfer: Transfer, group: frozenset[int]
                  ) -> list[tuple[int, int, int, frozenset[int]]]:
        """The units the plan chose, then free units up to the free part of the flow; returns
        the chosen units that could not move (unit, source, target, ``group``: the units the
        source gives in this plan, which may go along with a unit that holds them).

        The chosen units are tried until none more can move: a unit further in touches the
        target only once the unit in front of it has moved, and the plan lists them by
        layer, not in the order the map allows."""
        u, v = transfer.source, transfer.target
        pending = list(transfer.chosen)
        while pending:
            left = [i for i in pending if not self._move_chosen(i, u, v, group)]
            if len(left) == len(pending):
                break
            pending = left
        self._fill(u, v, transfer.loose)
        return [(i, u, v, group) for i in pending]

    def _move_chosen(self, i: int, u: int, v: int, group: frozenset[int] = frozenset()) -> bool:
        """Move the chosen unit ``i`` from ``u`` to ``v`` if it is still in ``u``, touches
        ``v``, and leaves ``u`` connected (or cuts off only free units, or units ``group`` that
        leave ``u`` in this plan anyway, which go with it)."""
        local = self.local
        if local.assignment[i] != u or not any(int(w) in local.members[v]
                                               for w in self.problem.adjacency[i]):
            return False
        bundle = self._bundle(u, v, i)
        if bundle is None or self.disruption() + sum(
                disruption_step(self.owner, self.cost, j, u, v) for j in bundle) > self.cap:
            return False
        if any(disruption_step(self.owner, self.cost, j, u, v) > 0 for j in bundle
               if j != i and j not in group):
            return False
        self._move(bundle, v)
        return True

    def _fill(self, u: int, v: int, amount: float) -> None:
        """Move free border units (no disruption) from ``u`` to ``v`` worth about ``amount``,
        the one that best fits what is left first, while that brings the flow closer."""
        local = self.local
        weight = self.problem.measures[:, 0] / local.scale[0]
        remaining = amount
        while remaining > EPS:
            best = None
            for i in _border_units(local, self.problem.adjacency, u, v):
                if float(weight[i]) >= 2 * remaining - EPS:  # further from the plan
                    continue
                bundle = self._bundle(u, v, i)
                if bundle is None:
                    continue
                w = float(weight[bundle].sum())
                if w >= 2 * remaining - EPS:
                    continue
                step = sum(disruption_step(self.owner, self.cost, j, u, v) for j in bundle)
                if step > 0:
                    continue
                key = (step, abs(remaining - w), len(bundle), i)
                if best is None or key < best[0]:
                    best = (key, bundle)
            if best is None:
                break
            self._move(best[1], v)
            remaining -= float(weight[best[1]].sum())

    def _bundle(self, u: int, v: int, i: int) -> list[int] | None:
        """Unit ``i`` and whatever of ``u`` it alone connects to ``u``'s base (e.g. a departed
        rep's block behind it), if all of that may move; None otherwise."""
        local = self.local
        if local.connected_without(u, i):
            return [i]
        members = local.members[u]
        root = int(self.staffing.sites[u])
        seen = {root, i}
        queue = deque([root])
        adjacency = self.problem.adjacency
        while queue:
            a = queue.popleft()
            for b in adjacency[a]:
                b = int(b)
                if b not in seen and b in members:
                    seen.add(b)
                    queue.append(b)
        detached = sorted(members - seen)
        if len(detached) > 30 or local.fixed[detached].any():
            return None
        return [i, *detached]

    def _move(self, bundle: list[int], v: int) -> None:
        """Move ``bundle`` (connected through its first unit, which touches ``v``) to ``v``."""
        for j in bundle:
            self.local.move(j, v)
        self.moves += len(bundle)

    def undo_unneeded(self) -> int:
        """Send a moved unit back to its owner wherever balance and contiguity allow (a move the
        plan made that balance no longer needs), most disruptive first."""
        chains = ChainRepair(self.problem, self.staffing, self.local.assignment, self.owner,
                             self.cost, self.cap, self.contiguity)
        returned = chains.return_home()
        self.returned += returned
        self._reset(chains.assignment)
        return returned


def _flow_order(transfers: tuple[Transfer, ...], T: int) -> list[Transfer]:
    """Transfers ordered so that a territory gives only after it has received (topological
    order of the flow; any cycle is broken where it was met)."""
    into = np.zeros(T, dtype=np.int64)
    out: dict[int, list[Transfer]] = {}
    for tr in transfers:
        into[tr.target] += 1
        out.setdefault(tr.source, []).append(tr)
    ready = deque(sorted(t for t in out if into[t] == 0))
    ordered: list[Transfer] = []
    done: set[int] = set()
    while len(done) < len(out):
        if not ready:  # a cycle: start from the territory giving most
            rest = [t for t in out if t not in done]
            ready.append(max(rest, key=lambda t: sum(tr.workload for tr in out[t])))
        t = ready.popleft()
        if t in done:
            continue
        done.add(t)
        for tr in sorted(out.get(t, []), key=lambda tr: -tr.workload):
            ordered.append(tr)
            into[tr.target] -= 1
            if into[tr.target] == 0 and tr.target in out:
                ready.append(tr.target)
    return ordered
