"""A lower bound on travel compactness valid for the problem, not only for one plan's centres.

Objective ``balance`` with ``compactness: travel`` asks for ``N`` territories, each measure
``m`` within ``tau_m`` of its mean per rep ``omega_m = A_m / N``, every territory connected,
minimising ``sum_i w_i d(i, centre)``. Relaxing contiguity and integrality gives the LP of the
balanced p-median with free centres, over units ``i`` and candidate centres ``j`` (hire sites
and existing reps' homes)::

    min  sum_ij c_ij x_ij                       c_ij = rate_i * d(i, j)
    s.t. sum_j x_ij = 1                 (alpha_i)   every unit assigned
         sum_j y_j = N                  (mu)        y_j: reps based at j
         sum_i a_im x_ij >= L_m y_j     (lambda_jm >= 0)   L_m = (1 - tau_m) omega_m
         sum_i a_im x_ij <= U_m y_j     (nu_jm <= 0)       U_m = (1 + tau_m) omega_m
         x_ij <= y_j                    (link)
         0 <= x_ij <= 1,  lo_j <= y_j <= hi_j

with ``lo_j`` the existing reps based at ``j`` and ``hi_j`` that plus the hires the site takes.
Every balanced, contiguous plan is feasible for it, so its value bounds every plan.

The LP is not solved as such: its Lagrangian dual over the assignment rows is maximised
instead, which has the same optimum. For multipliers ``alpha_i`` each centre's inner problem
(``x_.j = y_j z``) is a fractional knapsack over all units,

    g_j(alpha) = min {sum_i (c_ij - alpha_i) z_i : 0 <= z <= 1, L <= a.z <= U},

solved by sorting reduced cost per workload (vectorised, centres in blocks), and

    L(alpha) = sum_i alpha_i + min {sum_j g_j y_j : lo <= y <= hi, sum_j y_j = N}

(the fixed centres, then the cheapest others) is a lower bound for *any* ``alpha``, so the
search may stop at any time with a valid bound. ``alpha`` starts from each unit's travel in
the plan found and climbs by deflected subgradient steps (Polyak steps towards that plan's
travel). With several balance measures the knapsack keeps the first only, a relaxation: still
a valid bound, only weaker.

Why not column generation over unit-centre pairs with the links as lazy rows in HiGHS: measured
on the 400-unit lattice (10 territories, +-5 %), that LP needs about 80 pairs per unit with
their link rows before it converges; one HiGHS solve of it took 48 s (simplex) or 13 s
(interior point), and the whole column generation 58-130 s. The Lagrangian reaches within
0.4 % of the same LP value (10,363.7) in 4 s.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from allocator import clock
from allocator.alignment import AlignmentProblem, hire_places

# work charged to the search clock per Lagrangian step: a fixed part and a part per
# unit-centre pair priced (sorting included), measured on the 2-core development machine
PRICING_SECONDS_PER_STEP = 5.0e-3
PRICING_SECONDS_PER_PAIR = 6.0e-8
BLOCK_PAIRS = 2_000_000  # pairs priced at once: a few tens of MB of working arrays
# pairs one step prices (each centre's nearest units: 0.4 million at 1,600 units, 1.5 million
# at 4,900, 10 million at 40,000 x 500): above this many the solver tries no bound by default
# at 4,900 units x 50 (1.5 million) a 30 s solve had time for only 115 steps, 8.5 % below
# its plan, and the restarts from those multipliers' centres were worse than the first plan
MAX_PAIRS = 1_000_000
CACHED_PAIRS = 25_000_000  # the cost matrix is kept up to this size (200 MB)
# a centre's knapsack is first priced over this many times the units it sorts (about three
# territories' worth); on the 1,600-unit lattice the check passed for all but 0.3 % of rows
NEAR_FACTOR = 1
STAGES = (4.0, 2.0, 1.0)  # tolerance widening of the bound's stages (see pmedian_lp_bound)
TOP_UNITS = 64  # units of highest multiplier per weight whose entry is checked one by one


@dataclass(frozen=True)
class PMedianBound:
    """The bound (valid whenever the search stopped) and how it was reached."""

    bound: float
    iterations: int
    stopped_by: str  # target | deadline | iterations | step
    seconds: float  # wall seconds spent
    # the centres the Lagrangian opens at its best multipliers (units): on these lattices
    # nearly the integer optimum's, so a plan started from them is a strong plan
    centres: np.ndarray | None = None
    alpha: np.ndarray | None = None  # the best multipliers (a restart point)


def candidate_centres(problem: AlignmentProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units that may be a territory centre, with the fewest and most reps based there."""
    scenario = problem.scenario
    homes = (scenario.reps["home"].to_numpy(np.int64) if len(scenario.reps)
             else np.array([], dtype=np.int64))
    room = hire_places(problem, homes)
    based = np.bincount(homes, minlength=problem.n) if len(homes) else np.zeros(problem.n, int)
    most = based.copy()
    for unit, hires in room.items():
        most[unit] += hires
    centres = np.flatnonzero(most > 0)
    return centres, based[centres].astype(float), most[centres].astype(float)


def fractional_knapsack(reduced: np.ndarray, weight: np.ndarray, lower: float, upper: float,
                        prefix: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row ``b``: ``min sum_i reduced[b, i] z_i`` over ``0 <= z <= 1``,
    ``lower <= sum_i weight_i z_i <= upper``; the values and the ``z`` (rows of a matrix).

    Items are taken in order of reduced cost per weight up to the weight
    ``clip(W_neg, lower, upper)``, ``W_neg`` the weight of the items with negative reduced cost
    (all of them when that lies within the limits; the cheapest per weight otherwise).
    ``prefix``: sort only the cheapest ``prefix`` items of each row (a partial sort); rows
    whose answer reaches beyond them are sorted fully.
    """
    rows, n = reduced.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(weight > 0, reduced / weight, np.where(reduced < 0, -np.inf, np.inf))
    negative_weight = np.where(reduced < 0, weight, 0.0).sum(axis=1)
    target = np.clip(negative_weight, lower, upper)
    value = np.empty(rows)
    z = np.zeros((rows, n))
    if prefix is not None and prefix < n:
        part = np.argpartition(ratio, prefix - 1, axis=1)[:, :prefix]
        order = np.take_along_axis(part, np.argsort(np.take_along_axis(ratio, part, axis=1),
                                                    axis=1, kind="stable"), axis=1)
        enough = weight[order].sum(axis=1) >= target * (1 + 1e-12)
        done = np.flatnonzero(enough)
        _take_prefix(reduced[done], ratio[done], weight, target[done], order[done],
                     value, z, done)
        rest = np.flatnonzero(~enough)
    else:
        rest = np.arange(rows)
    if len(rest):
        order = np.argsort(ratio[rest], axis=1, kind="stable")
        _take_prefix(reduced[rest], ratio[rest], weight, target[rest], order, value, z, rest)
    return value, z


def _take_prefix(reduced, ratio, weight, target, order, value, z, rows) -> None:
    """Fill ``value[rows]`` and ``z[rows]``: items in ``order`` up to the weight ``target``."""
    w = weight[order]
    before = np.cumsum(w, axis=1) - w
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(w > 0, np.clip((target[:, None] - before) / w, 0.0, 1.0),
                         (np.take_along_axis(ratio, order, axis=1) == -np.inf).astype(float))
    value[rows] = (share * np.take_along_axis(reduced, order, axis=1)).sum(axis=1)
    block = np.zeros((len(rows), z.shape[1]))
    np.put_along_axis(block, order, share, axis=1)
    z[rows] = block


def priced_pairs(problem: AlignmentProblem, headcount: int) -> int:
    """Unit-centre pairs one Lagrangian step prices: each centre's nearest units when the
    first balance measure is positive everywhere (see ``_Lagrangian``), else every unit."""
    centres = candidate_centres(problem)[0]
    per_centre = problem.n
    if (problem.measures[:, 0] > 0).all():
        prefix = int(min(problem.n, 3 * problem.n / max(headcount, 1) + 16))
        per_centre = min(problem.n, int(NEAR_FACTOR * prefix))
    return len(centres) * per_centre


class _Lagrangian:
    """``L(alpha) = sum_i alpha_i + min {sum_j g_j(alpha) y_j : lo <= y <= hi, sum y = N}``
    with ``g_j`` the fractional knapsack of centre ``j`` over reduced costs ``c_ij - alpha_i``
    (the first balance measure; further measures are relaxed, which keeps the bound valid)."""

    def __init__(self, problem: AlignmentProblem, headcount: int) -> None:
        self.problem = problem
        self.centres, self.lo, self.hi = candidate_centres(problem)
        self.n, self.C, self.N = problem.n, len(self.centres), headcount
        self.weight = problem.measures[:, 0]
        omega = self.weight.sum() / headcount
        self.L = (1 - problem.tolerance[0]) * omega
        self.U = (1 + problem.tolerance[0]) * omega
        # a centre's knapsack holds about a territory: sort about three territories' units
        self.prefix = int(min(self.n, 3 * self.n / max(headcount, 1) + 16))
        units = np.arange(self.n)
        # each centre's nearest units: a knapsack is priced over them alone whenever no unit
        # beyond them could enter it (checked every step, see _near_knapsacks)
        self.near = self.near_cost = None
        positive = self.weight > 0
        if positive.all() and self.n > NEAR_FACTOR * self.prefix:
            points = problem.scenario.coordinates.embedded()
            k = min(self.n, int(NEAR_FACTOR * self.prefix))
            near = np.asarray(cKDTree(points).query(points[self.centres], k=k)[1])
            self.near = near.reshape(self.C, k)
            self.near_cost = problem.cost(self.near, self.centres[:, None])
            # units beyond the nearest are at least this far (the embedding keeps distance
            # order), and cost at least their rate per weight times that per unit of weight
            self.reach = problem.distance(self.near[:, -1], self.centres)
            self.rate_per_weight = float((problem.travel_rate / self.weight).min())
        # the centre-by-unit cost matrix, kept when it is small enough (and needed)
        self.cost = (problem.cost(units[None, :], self.centres[:, None])
                     if self.n * self.C <= CACHED_PAIRS and self.near is None else None)

    def _knapsacks(self, alpha: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        units = np.arange(self.n)
        cost = (self.cost[centres] if self.cost is not None else
                self.problem.cost(units[None, :], self.centres[centres][:, None]))
        return fractional_knapsack(cost - alpha[None, :], self.weight, self.L, self.U,
                                   self.prefix)

    def __call__(self, alpha: np.ndarray) -> tuple[float, np.ndarray]:
        """The value and a subgradient ``1 - sum_j y_j z_ij``; ``self.opened`` keeps the
        centres (units) with ``y_j > 0``."""
        values = np.empty(self.C)
        full = np.arange(self.C)
        self.shares = None
        if self.near is not None:
            values, self.shares, exact = self._near_knapsacks(alpha)
            full = np.flatnonzero(~exact)
        block = max(1, BLOCK_PAIRS // max(self.n, 1))
        for lo in range(0, len(full), block):
            centres = full[lo:lo + block]
            values[centres] = self._knapsacks(alpha, centres)[0]
        priced = len(full) * self.n + (0 if self.near is None else self.near.size)
        clock.charge(PRICING_SECONDS_PER_STEP + priced * PRICING_SECONDS_PER_PAIR)
        self.exact = np.ones(self.C, bool)
        self.exact[full] = False
        # y: the fixed centres, then the cheapest others up to N (all y at most 1)
        y = self.lo.copy()
        free = np.flatnonzero(self.hi > self.lo)
        chosen = free[np.argsort(values[free], kind="stable")[:self.N - int(self.lo.sum())]]
        y[chosen] = 1.0
        value = float(alpha.sum() + (values * y).sum())
        self.values = values
        used = np.flatnonzero(y > 0)
        self.opened = self.centres[used]
        z = self.patterns(alpha, used)
        return value, 1.0 - (y[used, None] * z).sum(axis=0)

    def patterns(self, alpha: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The knapsack solutions ``z`` of centres ``rows`` (positions) at the last priced
        ``alpha``, dense (rows x units)."""
        z = np.zeros((len(rows), self.n))
        if self.shares is not None:
            done = self.exact[rows]
            for k in np.flatnonzero(done):
                z[k, self.near[rows[k]]] = self.shares[rows[k]]
            rest = np.flatnonzero(~done)
        else:
            rest = np.arange(len(rows))
        if len(rest):
            z[rest] = self._knapsacks(alpha, rows[rest])[1]
        return z

    def _near_knapsacks(self, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every centre's knapsack over its nearest units: values, shares (as ``self.near``)
        and which rows are exact.

        A row is exact when no farther unit could enter: the solution's marginal ratio
        ``lam`` (0 when the weight of the negative items lies within ``[L, U]``, else the ratio
        of the last item taken) is at most the ratio ``(c_ij - alpha_i) / w_i`` of every unit
        beyond the nearest: checked one by one for the units of highest ``alpha / w``, and for
        the others through ``reach_j * min(rate / w) - max(alpha / w)``; then the solution is
        optimal over all units by LP duality. Other rows are priced in full.
        """
        reduced = self.near_cost - alpha[self.near]
        weight = self.weight[self.near]
        ratio = reduced / weight
        order = np.argsort(ratio, axis=1, kind="stable")
        w = np.take_along_axis(weight, order, axis=1)
        r = np.take_along_axis(ratio, order, axis=1)
        negative_weight = np.where(reduced < 0, weight, 0.0).sum(axis=1)
        target = np.clip(negative_weight, self.L, self.U)
        before = np.cumsum(w, axis=1) - w
        share = np.clip((target[:, None] - before) / w, 0.0, 1.0)
        values = (share * r * w).sum(axis=1)
        shares = np.zeros_like(share)
        np.put_along_axis(shares, order, share, axis=1)
        taken = (share > 0).sum(axis=1)
        last = r[np.arange(self.C), np.maximum(taken - 1, 0)]
        inside = (negative_weight >= self.L) & (negative_weight <= self.U)
        marginal = np.where(inside, 0.0, last)
        # the units of highest alpha per weight are checked one by one, the rest together
        per_weight = alpha / self.weight
        top = np.argpartition(-per_weight, TOP_UNITS)[:TOP_UNITS] if self.n > TOP_UNITS \
            else np.arange(self.n)
        rest = np.ones(self.n, bool)
        rest[top] = False
        least_beyond = self.reach * self.rate_per_weight - float(per_weight[rest].max(initial=0))
        top_distance = self.problem.distance(top[None, :], self.centres[:, None])
        top_ratio = (self.problem.travel_rate[top] * top_distance - alpha[top]) / self.weight[top]
        beyond = top_distance >= self.reach[:, None] * (1 - 1e-12)
        top_ok = (~beyond | (top_ratio >= marginal[:, None])).all(axis=1)
        enough = before[:, -1] + w[:, -1] >= target * (1 + 1e-12)
        exact = enough & top_ok & (marginal <= least_beyond)
        return values, shares, exact

    def radius_start(self) -> np.ndarray:
        """Each unit's rate times the distance to its ``ceil(n / N)``-th nearest unit: what
        serving it costs from the edge of a territory of average size."""
        points = self.problem.scenario.coordinates.embedded()
        k = min(self.n, math.ceil(self.n / max(self.N, 1)))
        near = np.atleast_2d(cKDTree(points).query(points, k=k)[1].reshape(self.n, k))[:, -1]
        return self.problem.cost(np.arange(self.n), near)


def pmedian_lp_bound(problem: AlignmentProblem, headcount: int, upper: float,
                     deadline: float = math.inf, alpha: np.ndarray | None = None,
                     max_iterations: int = 2000, patience: int = 15,
                     max_pairs: int = MAX_PAIRS, stages: tuple[float, ...] = STAGES
                     ) -> PMedianBound | None:
    """Lower bound on the travel of every balanced plan of ``headcount`` reps (see module).

    ``problem.travel_rate`` weighs distance (the districting search sets it to workload).
    ``upper``: the travel of a known plan; it sets the subgradient steps (Polyak) and stops the
    search when reached. ``alpha``: starting multipliers, e.g. each unit's travel in that plan.
    Stops at ``deadline`` on the search clock (after one evaluation), after ``max_iterations``,
    or when the step has shrunk to nothing. ``None`` when a site can host several reps (its
    inner problem is not handled here) or when a step prices more than ``max_pairs``
    unit-centre pairs (:func:`priced_pairs`; by default about 1,800 units into 10 territories,
    2,500 into 20; larger maps get too few steps for a useful bound within a solve's limit).

    ``stages``: the search runs first with every tolerance widened by these factors (a quarter,
    a quarter, then half the iterations and time), each stage starting from the last one's
    multipliers. A wider tolerance is a relaxation, so every stage's value bounds the problem,
    and the Lagrangian of the narrower tolerance is never below the wider one's at the same
    multipliers. Why: at +-3 % on the 400-unit lattice the search at the tolerance alone
    stalled at 10,254-10,322 (restarts did not help), while widened 3.3x, then 1.7x, then at
    +-3 % it reached 10,375.6 in the same 2,400 steps (the LP is 10,380.5).
    """
    started = time.perf_counter()
    centres, _, most = candidate_centres(problem)
    if most.max(initial=0) > 1 or priced_pairs(problem, headcount) > max_pairs:
        return None
    shares = (0.25, 0.25, 0.5)[-len(stages):] if len(stages) <= 3 else (1 / len(stages),) * len(
        stages)
    budgets = [int(max_iterations * share) for share in shares[:-1]]
    budgets.append(max_iterations - sum(budgets))
    result, total = None, 0
    for index, (factor, share, budget) in enumerate(zip(stages, shares, budgets, strict=True)):
        if budget <= 0:
            continue
        now = clock.now()
        left = sum(shares[index:])
        until = deadline if index == len(stages) - 1 or not math.isfinite(deadline) else \
            now + (deadline - now) * share / left
        loose = dataclasses.replace(problem,
                                    tolerance=np.minimum(problem.tolerance * factor, 1.0))
        found = _subgradient(loose, headcount, upper, until, alpha, budget, patience)
        total += found.iterations
        alpha = found.alpha
        if result is None or found.bound >= result.bound:
            result = found
        result = dataclasses.replace(result, iterations=total, stopped_by=found.stopped_by)
        if found.stopped_by == "target" or (clock.now() >= deadline and index < len(stages) - 1
                                            and found.stopped_by == "deadline"):
            break
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def _subgradient(problem: AlignmentProblem, headcount: int, upper: float, deadline: float,
                 alpha: np.ndarray | None, max_iterations: int, patience: int) -> PMedianBound:
    """The subgradient search of :func:`pmedian_lp_bound` for one tolerance."""
    started = time.perf_counter()
    lagrangian = _Lagrangian(problem, headcount)
    if alpha is None:  # the best of scaled territory radii (a plan's travel does better)
        radius = lagrangian.radius_start()
        alpha = max((scale * radius for scale in (0.5, 1.0, 1.5, 2.0)),
                    key=lambda start: lagrangian(start)[0])
    alpha = np.asarray(alpha, float).copy()
    best, best_alpha, step, since, stopped = -math.inf, alpha, 1.0, 0, "iterations"
    opened = None
    direction = np.zeros(problem.n)
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        value, gradient = lagrangian(alpha)
        if value > best + 1e-9 * abs(best) if math.isfinite(best) else True:
            best, best_alpha, since, opened = value, alpha, 0, lagrangian.opened
        else:
            since += 1
            if since >= patience:  # no progress at this step size: halve it, from the best
                step, since, alpha = step / 2, 0, best_alpha
        if best >= upper * (1 - 1e-9):
            stopped = "target"
            break
        if step < 1e-6:
            stopped = "step"
            break
        if clock.now() >= deadline:
            stopped = "deadline"
            break
        # a deflected subgradient (Camerini, Fratta and Maffioli) zig-zags less
        if float(gradient @ direction) < 0:
            gradient = gradient + 0.5 * direction
        direction = gradient
        norm = float(gradient @ gradient)
        if norm < 1e-12:  # a zero subgradient: alpha is optimal
            stopped = "target"
            break
        alpha = alpha + step * (upper - value) / norm * gradient
    return PMedianBound(max(best, 0.0), iterations, stopped, time.perf_counter() - started,
                        opened, best_alpha)


def lagrangian_centres(problem: AlignmentProblem, headcount: int, alpha: np.ndarray,
                       overlap: float = 0.5) -> np.ndarray | None:
    """``headcount`` centres (units) read off the Lagrangian at ``alpha``: the centres with
    reps fixed there, then the others in order of their knapsack value, skipping a centre
    whose knapsack shares more than ``overlap`` of its weight with the ones already taken.

    Why: near the optimal multipliers the cheapest knapsacks are the territories of a nearly
    optimal balanced p-median, but neighbouring units price alike, so the plain cheapest
    ``headcount`` often holds two centres side by side and leaves a region without one.
    ``None`` when the bound does not apply (see :func:`pmedian_lp_bound`).
    """
    centres, lo, most = candidate_centres(problem)
    if most.max(initial=0) > 1 or not len(centres):
        return None
    lagrangian = _Lagrangian(problem, headcount)
    lagrangian(np.asarray(alpha, float))
    values = lagrangian.values
    weight = lagrangian.weight
    chosen = list(np.flatnonzero(lo > 0))
    covered = np.zeros(problem.n)
    if chosen:
        covered = lagrangian.patterns(alpha, np.array(chosen)).max(axis=0)
    order = [j for j in np.argsort(values, kind="stable") if lo[j] == 0]
    skipped = []
    for start in range(0, len(order), 64):
        if len(chosen) >= headcount:
            break
        rows = np.array(order[start:start + 64])
        z = lagrangian.patterns(alpha, rows)
        for row, pattern in zip(rows, z, strict=True):
            if len(chosen) >= headcount:
                break
            shared = float((np.minimum(pattern, covered) * weight).sum())
            if shared <= overlap * max(float((pattern * weight).sum()), 1e-12):
                chosen.append(int(row))
                covered = np.maximum(covered, pattern)
            else:
                skipped.append(int(row))
    chosen += skipped[:headcount - len(chosen)]  # too few apart: the cheapest of the rest
    return np.sort(centres[np.array(chosen[:headcount], dtype=np.int64)])

