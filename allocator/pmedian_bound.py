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
# one step prices every unit-centre pair (about 0.15 s a step at 1,600 units, 2 s at 4,900,
# minutes at 40,000): above this many pairs the solver tries no bound by default
MAX_PAIRS = 5_000_000
CACHED_PAIRS = 25_000_000  # the cost matrix is kept up to this size (200 MB)


@dataclass(frozen=True)
class PMedianBound:
    """The bound (valid whenever the search stopped) and how it was reached."""

    bound: float
    iterations: int
    stopped_by: str  # target | deadline | iterations | step
    seconds: float  # wall seconds spent


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
        # the centre-by-unit cost matrix, kept when it is small enough
        self.cost = (problem.cost(units[None, :], self.centres[:, None])
                     if self.n * self.C <= CACHED_PAIRS else None)

    def _knapsacks(self, alpha: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        units = np.arange(self.n)
        cost = (self.cost[centres] if self.cost is not None else
                self.problem.cost(units[None, :], self.centres[centres][:, None]))
        return fractional_knapsack(cost - alpha[None, :], self.weight, self.L, self.U,
                                   self.prefix)

    def __call__(self, alpha: np.ndarray) -> tuple[float, np.ndarray]:
        """The value and a subgradient ``1 - sum_j y_j z_ij``."""
        values = np.empty(self.C)
        block = max(1, BLOCK_PAIRS // max(self.n, 1))
        for lo in range(0, self.C, block):
            centres = np.arange(lo, min(lo + block, self.C))
            values[centres] = self._knapsacks(alpha, centres)[0]
        clock.charge(PRICING_SECONDS_PER_STEP + self.n * self.C * PRICING_SECONDS_PER_PAIR)
        # y: the fixed centres, then the cheapest others up to N (all y at most 1)
        y = self.lo.copy()
        free = np.flatnonzero(self.hi > self.lo)
        chosen = free[np.argsort(values[free], kind="stable")[:self.N - int(self.lo.sum())]]
        y[chosen] = 1.0
        value = float(alpha.sum() + (values * y).sum())
        used = np.flatnonzero(y > 0)
        z = self._knapsacks(alpha, used)[1]  # the chosen patterns again (few rows)
        return value, 1.0 - (y[used, None] * z).sum(axis=0)

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
                     max_pairs: int = MAX_PAIRS) -> PMedianBound | None:
    """Lower bound on the travel of every balanced plan of ``headcount`` reps (see module).

    ``problem.travel_rate`` weighs distance (the districting search sets it to workload).
    ``upper``: the travel of a known plan; it sets the subgradient steps (Polyak) and stops the
    search when reached. ``alpha``: starting multipliers, e.g. each unit's travel in that plan.
    Stops at ``deadline`` on the search clock (after one evaluation), after ``max_iterations``,
    or when the step has shrunk to nothing. ``None`` when a site can host several reps (its
    inner problem is not handled here) or above ``max_pairs`` unit-centre pairs (by default
    about 2,200 units x as many sites; larger maps get too few steps for a useful bound within a
    solve's limit).
    """
    started = time.perf_counter()
    centres, _, most = candidate_centres(problem)
    if most.max(initial=0) > 1 or problem.n * len(centres) > max_pairs:
        return None
    lagrangian = _Lagrangian(problem, headcount)
    if alpha is None:  # the best of scaled territory radii (a plan's travel does better)
        radius = lagrangian.radius_start()
        alpha = max((scale * radius for scale in (0.5, 1.0, 1.5, 2.0)),
                    key=lambda start: lagrangian(start)[0])
    alpha = np.asarray(alpha, float).copy()
    best, best_alpha, step, since, stopped = -math.inf, alpha, 1.0, 0, "iterations"
    direction = np.zeros(problem.n)
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        value, gradient = lagrangian(alpha)
        if value > best + 1e-9 * abs(best) if math.isfinite(best) else True:
            best, best_alpha, since = value, alpha, 0
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
    return PMedianBound(max(best, 0.0), iterations, stopped, time.perf_counter() - started)
