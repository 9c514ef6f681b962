"""Exact improvement with the chosen solver: the whole model when small, else LNS.

Large-neighbourhood search: pick a territory (the most out of balance first, then in turn), add
its adjacent territories until the neighbourhood holds enough units, and re-solve the alignment
of that neighbourhood exactly with balance and contiguity (:func:`build_subproblem`), the rest
fixed. A re-solve is kept when it lowers (balance violation, travel less the margin on the
territories' sales; see :class:`TerritorySales`); the current plan is the start, so a re-solve
never makes things worse.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from allocator import clock
from allocator.alignment import AlignmentProblem, LocalSearch, Staffing, site_needs
from allocator.formulation import build_subproblem, hint_flows
from allocator.plan import plan_costs
from allocator.response import conjugate, spread_effort, tightest_prices, unit_sales
from allocator.settings import SolverSpec
from allocator.sizing import economics
from allocator.solvers import solve_mip


def territory_graph(problem: AlignmentProblem, assignment: np.ndarray, T: int) -> list[set[int]]:
    edges = problem.scenario.edges
    a, b = assignment[edges[:, 0]], assignment[edges[:, 1]]
    graph: list[set[int]] = [set() for _ in range(T)]
    for u, v in zip(a[a != b], b[a != b], strict=True):
        graph[u].add(int(v))
        graph[v].add(int(u))
    return graph


def neighbourhood(graph: list[set[int]], seed: int, sizes: np.ndarray, max_units: int,
                  max_territories: int, rng: np.random.Generator) -> list[int]:
    chosen = [seed]
    frontier = list(graph[seed])
    rng.shuffle(frontier)
    total = sizes[seed]
    while frontier and len(chosen) < max_territories:
        t = frontier.pop(0)
        if t in chosen or total + sizes[t] > max_units:
            continue
        chosen.append(t)
        total += sizes[t]
        extra = [u for u in graph[t] if u not in chosen]
        rng.shuffle(extra)
        frontier.extend(extra)
    return sorted(chosen)


class TerritorySales:
    """The sales side of the objective for a fixed staffing: what each territory's hours sell.

    A territory's sales are concave in its units (the hours are spread where they return most),
    so a re-solve cannot price them exactly. At the current alignment each territory ``t`` has
    the price ``lambda_t`` of its marginal hour, and ``lambda_t h_t + sum_{i in t} phi_i(lambda_t)``
    (the conjugate bound) is exact there and linear in the units: a re-solve maximises that,
    and its result is kept only if the true value (travel less the margin on sales) improves.
    Zero margin (a cost objective) leaves travel alone.
    """

    def __init__(self, problem: AlignmentProblem, staffing: Staffing) -> None:
        scenario = problem.scenario
        s = scenario.settings
        econ = economics(scenario)
        self.margin = s.strategy.margin if s.strategy.objective == "max_contribution" else 0.0
        self.spec = s.response
        self.problem, self.sites = problem, staffing.sites
        self.hours = np.array([econ.rep_hours[list(reps)].sum() for reps in staffing.reps]) \
            + staffing.hires * econ.hire_hours
        self.potential = scenario.units["potential"].to_numpy(float)
        self.workload = scenario.units["workload"].to_numpy(float)

    def _members(self, assignment: np.ndarray, terrs: list[int]):
        members = np.flatnonzero(np.isin(assignment, terrs))
        local = np.searchsorted(np.asarray(terrs), assignment[members])
        return members, local

    def sales(self, assignment: np.ndarray, terrs: list[int]) -> float:
        """Expected sales of the territories ``terrs`` (sorted)."""
        members, local = self._members(assignment, terrs)
        return float(_water_fill(self.potential, self.workload, self.hours, members, local,
                                 len(terrs), self.spec, hours_of=np.asarray(terrs)).sum())

    def value(self, assignment: np.ndarray) -> float:
        """The margin on all territories' sales less all travel: the part of the objective
        the alignment decides."""
        terrs = list(range(len(self.hours)))
        travel = float(self.problem.cost(np.arange(len(assignment)),
                                         self.sites[assignment]).sum())
        return self.margin * self.sales(assignment, terrs) - travel

    def prices(self, assignment: np.ndarray, terrs: list[int]) -> dict[int, float]:
        """Each territory's price of an hour at the current alignment."""
        members, local = self._members(assignment, terrs)
        lam = tightest_prices(self.potential, self.workload, self.hours[terrs], members, local,
                              np.ones(len(members)), self.spec)
        return {t: float(lam[k]) for k, t in enumerate(terrs)}


def lns(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
        spec: SolverSpec, deadline: float, rng: np.random.Generator,
        max_units: int = 160, max_territories: int = 5) -> tuple[np.ndarray, dict]:
    """Improve ``assignment`` by exact re-solves of neighbourhoods until the deadline."""
    search = LocalSearch(problem, staffing, assignment)
    sales = TerritorySales(problem, staffing)
    # more sales may cost more travel: never more than the budget has room for
    room = math.inf
    margin = sales.margin
    if margin:
        room = problem.scenario.settings.strategy.budget \
            - plan_costs(problem.scenario, problem, staffing, assignment)["total"]
        if room <= 0:  # over the budget: only travel counts
            margin = 0.0
    T = len(staffing.sites)
    stats = {"resolves": 0, "improved": 0}
    quiet = 0
    order = list(rng.permutation(T))
    while clock.now() < deadline - 0.5 and quiet < T:
        lower, upper = search.lower, search.upper
        over = (np.maximum(search.load - upper, 0) + np.maximum(lower - search.load, 0)).sum(1)
        violated = np.flatnonzero(over > 1e-9)
        if len(violated):
            # any violated territory, the worse more likely: a seed that failed is not retried
            # forever
            seed = int(rng.choice(violated, p=over[violated] / over[violated].sum()))
        else:
            if not order:
                order = list(rng.permutation(T))
            seed = int(order.pop())
        graph = territory_graph(problem, search.assignment, T)
        sizes = np.bincount(search.assignment, minlength=T)
        terrs = neighbourhood(graph, seed, sizes, max_units, max_territories, rng)
        if len(terrs) < 2:
            quiet += 1
            continue
        travel = _travel(problem, staffing, search.assignment, terrs)
        before = (search.violation(),
                  travel - margin * sales.sales(search.assignment, terrs) if margin else travel)
        # a thousandth of the mean out of balance outweighs all travel of the neighbourhood
        elastic = 1e3 * (travel + 1.0) if before[0] > 1e-9 else None
        # out of balance, only balance and travel count; balanced, sales count too
        prices = sales.prices(search.assignment, terrs) if margin and elastic is None else None
        sub = build_subproblem(problem, staffing, search.assignment, terrs, elastic=elastic,
                               prices=prices, margin=margin)
        for (i, t), var in sub.x.items():
            var.setInitialValue(1 if search.assignment[i] == t else 0)
        hint_flows(sub, problem, search.assignment, {t: int(staffing.sites[t]) for t in terrs})
        left = deadline - clock.now()
        outcome = solve_mip(sub.model, spec.name, time_limit=min(5.0, max(0.2, left - 0.3)),
                            gap=1e-4, seed=spec.seed, threads=spec.threads)
        stats["resolves"] += 1
        if outcome.objective is None:
            quiet += 1
            continue
        trial = search.assignment.copy()
        for (i, t), var in sub.x.items():
            if var.varValue is not None and var.varValue > 0.5:
                trial[i] = t
        candidate = LocalSearch(problem, staffing, trial)
        travel_after = _travel(problem, staffing, trial, terrs)
        more_travel = travel_after - travel
        after = (candidate.violation(),
                 travel_after - margin * sales.sales(trial, terrs) if margin else travel_after)
        affordable = more_travel <= max(room, 0.0)
        if _connected(candidate, terrs) and (after[0] < before[0] - 1e-9 or (
                after[0] <= before[0] + 1e-12 and after[1] < before[1] - 1e-6
                and affordable)):
            room -= more_travel
            search = candidate
            stats["improved"] += 1
            quiet = 0
        else:
            quiet += 1
    return search.assignment, stats


def sales_moves(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                deadline: float, contiguity: bool = True,
                max_rounds: int = 40) -> tuple[np.ndarray, dict]:
    """Moves and swaps of single units between adjacent territories that raise the margin on
    sales less travel.

    The re-solves see each territory's sales linearised at its price; a move of one unit is
    judged on the true sales instead. Moving unit ``i`` from ``t`` to ``u`` gains at most
    ``margin (phi_i(lambda_u) - phi_i(lambda_t))`` on sales (the conjugate bound at the
    territories' prices is exact there, and above the value anywhere else), which screens the
    candidates at the cost of one vector expression; the survivors are valued exactly in one
    batched water-filling of the territories they would make. Each round makes the best moves
    of territories not yet touched in it, keeping balance, contiguity and the budget's room for
    travel. When no single move is left, swaps of two units across a border (which leave the
    loads nearly as they were, so that territories at their balance bounds can still trade) are
    screened and valued the same way. A plan over the budget is left as it is.
    """
    sales = TerritorySales(problem, staffing)
    stats = {"sales_moves": 0, "sales_swaps": 0, "sales_gain": 0.0}
    if not sales.margin:
        return assignment, stats
    scenario = problem.scenario
    room = scenario.settings.strategy.budget \
        - plan_costs(scenario, problem, staffing, assignment)["total"]
    if room <= 0:
        return assignment, stats
    search = LocalSearch(problem, staffing, assignment, contiguity)
    spec, margin, sites = sales.spec, sales.margin, staffing.sites
    potential, workload, hours = sales.potential, sales.workload, sales.hours
    edges = problem.scenario.edges
    both = np.concatenate([edges, edges[:, ::-1]])
    T = len(sites)
    measures = problem.measures

    def phi(units: np.ndarray, lam: np.ndarray) -> np.ndarray:
        return conjugate(potential[units], workload[units], lam, spec)

    def fits(terr: np.ndarray, change: np.ndarray) -> np.ndarray:
        load = search.load[terr] + change
        return ((load >= search.lower[terr] - 1e-9) & (load <= search.upper[terr] + 1e-9)).all(1)

    swaps = False
    for _ in range(max_rounds):
        if clock.now() >= deadline:
            break
        a = search.assignment
        order = np.argsort(a, kind="stable")
        size = np.bincount(a, minlength=T)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        value = _water_fill(potential, workload, hours, order, a[order], T, spec)
        lam = tightest_prices(potential, workload, hours, order, a[order],
                              np.ones(len(order)), spec)
        # a unit beside another territory
        i, u = both[:, 0], a[both[:, 1]]
        keep = (a[i] != u) & ~search.fixed[i]
        border = np.unique(np.stack([i[keep], u[keep]], axis=1), axis=0)
        i, u = border[:, 0], border[:, 1]
        t = a[i]
        if not swaps:  # i from t to u
            j = np.full(len(i), -1)
            ok = fits(t, -measures[i]) & fits(u, measures[i])
        else:  # i from t to u and j from u to t, across the same border
            mine = pd.DataFrame({"i": i, "t": t, "u": u})
            pairs = mine.merge(mine.rename(columns={"i": "j", "t": "u", "u": "t"}),
                               on=["t", "u"])
            pairs = pairs[pairs["t"] < pairs["u"]]
            i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
            t, u = pairs["t"].to_numpy(), pairs["u"].to_numpy()
            ok = fits(t, measures[j] - measures[i]) & fits(u, measures[i] - measures[j])
        i, j, t, u = i[ok], j[ok], t[ok], u[ok]
        more_travel = problem.cost(i, sites[u]) - problem.cost(i, sites[t])
        screen = margin * (phi(i, lam[u]) - phi(i, lam[t]))
        if swaps:
            jj = np.maximum(j, 0)
            more_travel = more_travel + problem.cost(jj, sites[t]) - problem.cost(jj, sites[u])
            screen += margin * (phi(jj, lam[t]) - phi(jj, lam[u]))
        promising = (screen - more_travel > 1e-6) & (more_travel <= room)
        i, j, t, u = i[promising], j[promising], t[promising], u[promising]
        more_travel = more_travel[promising]
        gain = np.zeros(0)
        if len(i):
            # exact values of the two territories each candidate would make
            k = len(i)
            terr = np.concatenate([t, u])
            length = size[terr]
            offset = np.repeat(start[terr] - np.concatenate([[0], np.cumsum(length)[:-1]]),
                               length)
            units = order[np.arange(length.sum()) + offset]
            group = np.repeat(np.arange(2 * k), length)
            leaving = np.concatenate([i, j])  # i leaves t; j (if any) leaves u
            joining = np.concatenate([j, i])  # j (if any) joins t; i joins u
            stay = units != leaving[group]
            units, group = units[stay], group[stay]
            extra = np.flatnonzero(joining >= 0)
            units = np.concatenate([units, joining[extra]])
            group = np.concatenate([group, extra])
            clock.charge_moves(int(len(units) * WATER_FILL_PER_MOVE))
            after = _water_fill(potential, workload, hours, units, group, 2 * k, spec,
                                hours_of=terr)
            gain = margin * (after[:k] + after[k:] - value[t] - value[u]) - more_travel
        touched = np.zeros(T, dtype=bool)
        moved = 0
        for c in np.argsort(-gain, kind="stable"):
            if gain[c] <= 1e-6:
                break
            ti, ui, ii, ji = int(t[c]), int(u[c]), int(i[c]), int(j[c])
            if touched[ti] or touched[ui] or more_travel[c] > room:
                continue
            if ji < 0:
                if not search.connected_without(ti, ii):
                    continue
                search.move(ii, ui)
            else:
                search.move(ii, ui)
                search.move(ji, ti)
                if contiguity and (len(search.components(ti)) != 1
                                   or len(search.components(ui)) != 1):
                    search.move(ji, ui)
                    search.move(ii, ti)
                    continue
            touched[ti] = touched[ui] = True
            room -= float(more_travel[c])
            stats["sales_gain"] += float(gain[c])
            moved += 1
        stats["sales_swaps" if swaps else "sales_moves"] += moved
        if moved:
            swaps = False
        elif swaps:
            break
        else:
            swaps = True
    return search.assignment, stats


# the batched water-filling of one unit costs about this many single-unit moves of the local
# search (measured on the demo: 80 halvings of a vector the size of the territories)
WATER_FILL_PER_MOVE = 0.08


def _water_fill(potential: np.ndarray, workload: np.ndarray, hours: np.ndarray,
                units: np.ndarray, group: np.ndarray, groups: int, spec,
                hours_of: np.ndarray | None = None) -> np.ndarray:
    """Sales of each group of units spreading its territory's hours at their best."""
    terr_hours = hours if hours_of is None else hours[hours_of]
    effort = spread_effort(potential[units], workload[units], terr_hours, group, spec)
    return np.bincount(group, weights=unit_sales(potential[units], workload[units], effort, spec),
                       minlength=groups)


def _travel(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
            terrs: list[int]) -> float:
    members = np.flatnonzero(np.isin(assignment, terrs))
    return float(problem.cost(members, staffing.sites[assignment[members]]).sum())


def _connected(search: LocalSearch, terrs: list[int]) -> bool:
    if not search.contiguity:
        return True
    return all(len(search.components(t)) == 1 for t in terrs)


def merge_repair(problem: AlignmentProblem, staffing: Staffing,
                 assignment: np.ndarray) -> tuple[Staffing, np.ndarray]:
    """Merge an out-of-balance territory with an adjacent one into a team territory.

    Where units are large against the work of one rep (a metro county), two adjacent territories
    that cannot each be balanced often can be as one territory of ``n_a + n_b`` reps. Only hires
    move base (to the other site, within its room); existing reps keep their home. Among the
    merges whose union is within the tolerance, the one adding least travel is taken, repeatedly.
    """
    room = problem.scenario.sites.set_index("unit")["max_hires"].to_dict()
    omega = problem.measures.sum(axis=0) / staffing.headcount
    tol = problem.tolerance
    team = problem.scenario.settings.alignment.max_reps_per_territory
    staffing = staffing.copy()
    assignment = assignment.copy()
    while True:
        T = len(staffing.sites)
        n_reps = staffing.n_reps
        load = np.zeros((T, problem.measures.shape[1]))
        np.add.at(load, assignment, problem.measures)
        lower, upper = (1 - tol) * omega * n_reps[:, None], (1 + tol) * omega * n_reps[:, None]
        violated = np.flatnonzero(((load < lower - 1e-9) | (load > upper + 1e-9)).any(axis=1))
        if not len(violated):
            return staffing, assignment
        graph = territory_graph(problem, assignment, T)
        best = None
        for a in violated:
            for b in graph[a]:
                for keep, gone in ((a, b), (b, a)):
                    if staffing.reps[gone] or \
                            staffing.hires[keep] + staffing.hires[gone] > room.get(
                                int(staffing.sites[keep]), 0):
                        continue
                    n = n_reps[keep] + n_reps[gone]
                    if n > team:
                        continue
                    union = load[keep] + load[gone]
                    before = (_excess(load[keep], lower[keep], upper[keep])
                              + _excess(load[gone], lower[gone], upper[gone]))
                    after = _excess(union, (1 - tol) * omega * n, (1 + tol) * omega * n)
                    if after >= before - 1e-9:
                        continue
                    members = np.flatnonzero(assignment == gone)
                    extra = float(problem.cost(members, np.full(len(members),
                                                                staffing.sites[keep])).sum()
                                  - problem.cost(members, staffing.sites[assignment[members]]).sum())
                    if best is None or (after, extra) < best[0]:
                        best = ((after, extra), keep, gone)
        if best is None:
            return staffing, assignment
        _, keep, gone = best
        staffing.hires[keep] += staffing.hires[gone]
        assignment[assignment == gone] = keep
        staffing, remap = staffing.subset(np.arange(T) != gone)
        assignment = remap[assignment]


def _excess(load: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    return float((np.maximum(load - upper, 0) + np.maximum(lower - load, 0)).sum())


def move_hire_repair(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
                     tries: int = 40, release: bool = False) -> tuple[Staffing, np.ndarray]:
    """Move a rep from an under-loaded territory to an over-loaded (or the fullest) one.

    A hire changes base; an existing rep (where the scenario lets reps go) is released and a
    hire is added at the receiving territory, so that the head count stays and the plan stays within the LP's
    feasible set (the bound remains valid).

    A territory left without reps is dissolved: its units flow to the adjacent territories
    (nearest base first). Then a balance-first local search runs; a move is kept only if the
    total violation falls. Head count is unchanged.
    """
    room = problem.scenario.sites.set_index("unit")["max_hires"].to_dict()
    spec = problem.scenario.settings.reps
    may_release = release and (spec is None or spec.lock == "free")
    team = problem.scenario.settings.alignment.max_reps_per_territory
    locked = set(int(r) for r in problem.lock_unit[problem.lock_unit >= 0])
    current = LocalSearch(problem, staffing, assignment)
    current.run()
    attempts = 0
    improved = True
    while improved and attempts < tries and current.violation() > 1e-9:
        improved = False
        st = current.staffing
        excess = current.load - current.upper
        has_room = (st.hires < np.array([room.get(int(u), 0) for u in st.sites])) & (st.n_reps < team)
        over = np.flatnonzero((excess > 1e-9).any(axis=1) & has_room)
        if not len(over):  # no over-loaded base with room: the fullest bases that have room
            fill = (current.load / current.upper).max(axis=1)
            over = np.flatnonzero(has_room)
            over = over[np.argsort(-fill[over], kind="stable")][:3]
        # donors: territories with a hire, under-loaded ones first, then the least loaded
        slack = ((current.load - current.lower) / current.scale).min(axis=1)
        releasable = np.array([any(r not in locked for r in reps) for reps in st.reps], dtype=bool)
        with_hire = np.flatnonzero((st.hires > 0) | (releasable if may_release else False))
        donors = with_hire[np.argsort(slack[with_hire], kind="stable")][:8]
        receivers = over[np.argsort(-(excess[over] / current.scale).sum(axis=1), kind="stable")][:3]
        graph = territory_graph(problem, current.assignment, len(st.sites))
        pairs = []
        for to in receivers:  # a neighbour of an over-loaded territory hands over its rep
            for gone in graph[to]:
                if st.hires[gone] > 0 or (may_release and releasable[gone]):
                    pairs.append((int(to), int(gone)))
        for gone in donors:
            near = [t for t in graph[gone] if has_room[t]]  # neighbours absorb its units
            for to in list(receivers) + near:
                if to != gone and (to, gone) not in pairs:
                    pairs.append((int(to), int(gone)))
        need = site_needs(problem, st.headcount)[st.sites]
        for to, gone in pairs:
            if attempts >= tries:
                break
            if st.n_reps[to] >= team:
                continue  # a territory holds at most alignment.max_reps_per_territory reps
            if 0 < st.n_reps[gone] - 1 < need[gone]:
                continue  # its own site unit would no longer fit its reps
            attempts += 1
            trial_staffing = st.copy()
            trial_staffing.hires[to] += 1
            if trial_staffing.hires[gone] > 0:
                trial_staffing.hires[gone] -= 1
            else:  # let an existing rep go (the scenario allows it)
                trial_staffing.reps[gone].remove(
                    next(r for r in trial_staffing.reps[gone] if r not in locked))
            trial = current.assignment.copy()
            remap = np.arange(len(st.sites))
            if trial_staffing.n_reps[gone] == 0:  # its only rep left: dissolve it
                trial = _dissolve(problem, trial_staffing, trial, int(gone))
                trial_staffing, remap = trial_staffing.subset(np.arange(len(st.sites)) != gone)
            search = LocalSearch(problem, trial_staffing, remap[trial])
            search.repair_contiguity()
            search.run()
            if search.violation() < current.violation() - 1e-9:
                current = search
                improved = True
                break
    return current.staffing, current.assignment


def _dissolve(problem: AlignmentProblem, staffing: Staffing, assignment: np.ndarray,
              gone: int) -> np.ndarray:
    """Hand the units of territory ``gone`` to adjacent territories, nearest base first."""
    left = set(int(i) for i in np.flatnonzero(assignment == gone))
    while left:
        progress = False
        for i in sorted(left):
            options = {int(assignment[v]) for v in problem.adjacency[i]
                       if int(v) not in left and assignment[v] != gone}
            if options:
                options = sorted(options)
                cost = problem.cost(np.full(len(options), i), staffing.sites[options])
                assignment[i] = options[int(np.argmin(cost))]
                left.discard(i)
                progress = True
        if not progress:  # an enclave with no other neighbour: nearest base
            for i in left:
                cost = problem.cost(np.full(len(staffing.sites), i), staffing.sites)
                cost[gone] = np.inf
                assignment[i] = int(np.argmin(cost))
            break
    return assignment

