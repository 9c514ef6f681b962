"""The LP bound of a fixed head count, over every unit-site pair (column generation).

For head count ``N`` the relaxation keeps the organisation decisions (which existing reps stay,
how many hires at each site) and the assignment, drops integrality and contiguity, and prices
sales by the tangents of the pooled response curve (see :mod:`allocator.sizing`). With
``n_s = sum_{r based at s} keep_r + hire_s``:

    max  margin * sigma - sum_r (cost_r - release) keep_r - hire_cost * sum_s hire_s
         - sum_{i,s} c_is x_is - R * release - managers(N)
    s.t. sum_s x_is = 1                                          every unit i
         (1 - tau_m) omega_m n_s <= sum_i a_im x_is <= (1 + tau_m) omega_m n_s   every s, m
         sum_r keep_r + sum_s hire_s = N
         sigma <= S_j + lambda_j (sum_r h_r keep_r + h_hire sum_s hire_s - E_j)   every tangent j
         people cost + travel <= budget
         0 <= x, keep <= 1, 0 <= hire_s <= max_hires_s.

Pairs start pruned to each unit's nearest sites; columns with negative reduced cost are added
until none is left, so the value is the bound of the *unpruned* LP. If time runs out first, the
Farley bound (restricted value plus each unit's most negative reduced cost) is returned, which is
valid because each unit's pairs sum to one.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from allocator import clock
from allocator.alignment import AlignmentProblem
from allocator.response import conjugate, price_grid
from allocator.scenario import Scenario
from allocator.sizing import ResponseCurve, economics
from allocator.solvers import solve_lp

INF = highspy.kHighsInf


@dataclass(frozen=True)
class LpBound:
    headcount: int
    value: float  # upper bound of the objective (contribution, or minus cost)
    exact: bool  # True: the unpruned LP was solved to optimality
    feasible: bool
    rounds: int
    columns: int
    keep: np.ndarray | None = None  # LP value of keeping each existing rep
    hire: np.ndarray | None = None  # LP hires at each site (scenario.sites order)


def headcount_lp_bound(scenario: Scenario, problem: AlignmentProblem, headcount: int,
                       curve: ResponseCurve, start_k: int = 12, time_limit: float = 10.0,
                       max_rounds: int = 60, columns_per_round: int = 20,
                       lp_method: str = "simplex", strong_links: bool | None = None) -> LpBound:
    s = scenario.settings
    t0 = clock.now()
    n = scenario.n_units
    sites = scenario.sites["unit"].to_numpy()
    S = len(sites)
    M = problem.measures.shape[1]
    econ = economics(scenario)
    reps = scenario.reps
    R = len(reps)
    site_pos = {int(u): k for k, u in enumerate(sites)}
    rep_site = np.array([site_pos[int(h)] for h in reps["home"]], dtype=np.int64)
    omega = problem.measures.sum(axis=0) / headcount
    scale = omega
    keep_lo = np.zeros(R)
    if s.reps is not None and s.reps.lock == "keep":
        keep_lo[:] = 1.0
    locked_rep = problem.lock_unit
    keep_lo[np.unique(locked_rep[locked_rep >= 0])] = 1.0

    # allowed pairs: locked units only to their rep's site
    forced = np.where(locked_rep >= 0, rep_site[np.maximum(locked_rep, 0)], -1)
    near = scenario.coordinates.nearest(np.arange(n), sites, min(start_k, S))
    pu = np.repeat(np.arange(n), near.shape[1])
    ps = near.ravel()
    ok = (forced[pu] < 0) | (forced[pu] == ps)
    pu, ps = pu[ok], ps[ok]
    lock_units = np.flatnonzero(forced >= 0)
    pu = np.concatenate([pu, lock_units])
    ps = np.concatenate([ps, forced[lock_units]])
    pairs = np.unique(np.column_stack([pu, ps]), axis=0)

    e_hi = float(np.sort(econ.rep_hours)[::-1][: min(R, headcount)].sum()
                 + max(0, headcount) * econ.hire_hours)
    tangents = np.flatnonzero(curve.hours <= e_hi * 1.01)
    lo_idx = max(int(tangents.min()) - 1, 0) if len(tangents) else 0
    hi_idx = min(int(tangents.max()) + 2, len(curve.hours)) if len(tangents) else len(curve.hours)
    tangents = np.arange(lo_idx, hi_idx)
    J = len(tangents)
    managers = econ.managers(headcount) * econ.manager_cost
    constant = R * econ.release_cost + managers
    maximise = s.strategy.objective == "max_contribution"
    target = scenario.target_sales()
    # territory-level response: S_t(h_t) <= lambda_l h_t + sum_i phi_i(lambda_l) x_it
    prices = price_grid(curve.marginal(e_hi), points=13, spread=3.0)
    L = len(prices)
    units = scenario.units
    phi = np.column_stack([conjugate(units["potential"].to_numpy(float),
                                     units["workload"].to_numpy(float), lam_l, s.response)
                           for lam_l in prices])

    # x_is <= n_s tightens the bound a lot but makes big LPs slow (simplex and IPM alike)
    strong = len(pairs) <= 20_000 if strong_links is None else strong_links
    rounds = 0
    value = -np.inf
    last: LpBound | None = None
    while True:
        rounds += 1
        pu, ps = pairs[:, 0], pairs[:, 1]
        P = len(pairs)
        travel = problem.cost(pu, sites[ps])
        # columns: x (P) | keep (R) | hire (S) | sigma (1)
        # rows: units (n) | balance upper (S*M) | balance lower (S*M) | headcount | tangents (J) | budget
        r_bal_u = n
        r_bal_l = n + S * M
        r_head = n + 2 * S * M
        r_tan = r_head + 1
        r_budget = r_tan + J
        r_link = r_budget + 1
        r_terr = r_link + 1
        r_xlink = r_terr + S * L
        rows = r_xlink + (P if strong else 0)
        cols, rws, vals = [], [], []

        def add(col, row, val):
            cols.append(np.asarray(col))
            rws.append(np.asarray(row))
            vals.append(np.asarray(val, dtype=float))

        xcol = np.arange(P)
        add(xcol, pu, np.ones(P))
        a = problem.measures[pu] / scale
        for m in range(M):
            add(xcol, r_bal_u + ps * M + m, a[:, m])
            add(xcol, r_bal_l + ps * M + m, a[:, m])
        add(xcol, np.full(P, r_budget), travel)
        for l in range(L):
            add(xcol, r_terr + ps * L + l, -phi[pu, l])
        # strong linking x_is <= n_s: a site with a fraction of a rep gets that fraction of a unit
        if strong:
            add(xcol, r_xlink + xcol, np.ones(P))
        by_site = np.argsort(ps, kind="stable")
        site_start = np.searchsorted(ps[by_site], np.arange(S + 1))
        kcol = P + np.arange(R)
        hcol = P + R + np.arange(S)
        sigma = P + R + S
        tcol = sigma + 1 + np.arange(S)
        for l in range(L):
            add(kcol, r_terr + rep_site * L + l, -prices[l] * econ.rep_hours)
            add(hcol, r_terr + np.arange(S) * L + l, np.full(S, -prices[l] * econ.hire_hours))
            add(tcol, r_terr + np.arange(S) * L + l, np.ones(S))
        for k in range(R if strong else 0):
            rows_k = by_site[site_start[rep_site[k]]:site_start[rep_site[k] + 1]]
            add(np.full(len(rows_k), P + k), r_xlink + rows_k, -np.ones(len(rows_k)))
        if strong:
            add(P + R + ps[by_site], r_xlink + by_site, -np.ones(P))
        add([sigma], [r_link], [1.0])
        add(tcol, np.full(S, r_link), -np.ones(S))
        for m in range(M):
            up = (1 + problem.tolerance[m]) * omega[m] / scale[m]
            lo = (1 - problem.tolerance[m]) * omega[m] / scale[m]
            add(kcol, r_bal_u + rep_site * M + m, np.full(R, -up))
            add(kcol, r_bal_l + rep_site * M + m, np.full(R, -lo))
            add(hcol, r_bal_u + np.arange(S) * M + m, np.full(S, -up))
            add(hcol, r_bal_l + np.arange(S) * M + m, np.full(S, -lo))
        add(kcol, np.full(R, r_head), np.ones(R))
        add(hcol, np.full(S, r_head), np.ones(S))
        lam = curve.slope[tangents]
        for j in range(J):
            add(kcol, np.full(R, r_tan + j), -lam[j] * econ.rep_hours)
            add(hcol, np.full(S, r_tan + j), np.full(S, -lam[j] * econ.hire_hours))
        add(np.full(J, sigma), r_tan + np.arange(J), np.ones(J))
        add(kcol, np.full(R, r_budget), econ.rep_cost - econ.release_cost)
        add(hcol, np.full(S, r_budget), np.full(S, econ.hire_cost))
        col = np.concatenate(cols)
        row = np.concatenate(rws)
        val = np.concatenate(vals)
        order = np.lexsort((row, col))
        col, row, val = col[order], row[order], val[order]
        ncols = sigma + 1 + S
        start = np.searchsorted(col, np.arange(ncols + 1))

        cost = np.zeros(ncols)
        if maximise:
            cost[:P] = travel
            cost[kcol] = econ.rep_cost - econ.release_cost
            cost[hcol] = econ.hire_cost
            cost[sigma] = -s.strategy.margin
        else:
            cost[:P] = travel
            cost[kcol] = econ.rep_cost - econ.release_cost
            cost[hcol] = econ.hire_cost
        lower = np.zeros(ncols)
        upper = np.ones(ncols)
        lower[kcol] = keep_lo
        upper[hcol] = np.minimum(scenario.sites["max_hires"].to_numpy(float),
                                 s.alignment.max_reps_per_territory)
        upper[sigma] = INF
        upper[tcol] = INF
        if not maximise:
            lower[sigma] = target
        row_lo = np.full(rows, -INF)
        row_hi = np.zeros(rows)
        row_lo[:n] = 1.0
        row_hi[:n] = 1.0
        row_hi[r_bal_l:r_bal_l + S * M] = INF
        row_lo[r_bal_l:r_bal_l + S * M] = 0.0
        row_lo[r_head] = row_hi[r_head] = headcount
        row_hi[r_tan:r_tan + J] = curve.sales[tangents] - lam * curve.hours[tangents]
        row_hi[r_budget] = s.strategy.budget - constant

        h = solve_lp(cost, lower, upper, row_lo, row_hi, start, row, val, solver=lp_method,
                     time_limit=max(1.0, time_limit - (clock.now() - t0)))
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            # pruning can only make the LP infeasible if the full one is too; check the full
            # one before declaring it
            if P < n * S:
                pairs = _all_pairs(n, S, forced)
                continue
            return LpBound(headcount, -np.inf, True, False, rounds, P)
        if status != highspy.HighsModelStatus.kOptimal:
            # out of time inside the LP: no valid dual from this round; the previous round's
            # Farley bound still holds (or, in the first round, only the sizing bound)
            return last if last is not None else LpBound(headcount, np.inf, False, True, rounds, P)
        solution = h.getSolution()
        objective = h.getInfo().objective_function_value
        z = -(objective + constant)  # back to the max form (contribution, or minus cost)
        y = np.asarray(solution.row_dual)
        # reduced cost of every pair x_is (min form): c - A^T y
        all_rc = _pair_reduced_costs(problem, scenario, sites, y, n, S, M, scale,
                                     r_bal_u, r_bal_l, r_budget)
        all_rc += phi @ y[r_terr:r_terr + S * L].reshape(S, L).T
        if strong:
            all_rc[pu, ps] -= y[r_xlink:r_xlink + P]  # the pairs in the model have a link row
        all_rc[forced >= 0, :] = np.inf
        all_rc[lock_units, forced[lock_units]] = 0.0
        x_all = np.asarray(solution.col_value)
        # Farley: for every x of the full LP, cost = y.b + sum_j rc_j x_j; the non-pair columns
        # give the same as in the restricted optimum, each unit's pairs at least its least rc
        used = float((all_rc[pu, ps] * x_all[:P]).sum())
        value = z + used - float(all_rc.min(axis=1).sum())
        negative = all_rc < -1e-7 * max(1.0, abs(objective))
        keep_value, hire_value = x_all[kcol], x_all[hcol]
        # pairs already in the model may price negative at their upper bound: only new ones count
        negative[pu, ps] = False
        if not negative.any():
            return LpBound(headcount, z, True, True, rounds, P, keep_value, hire_value)
        last = LpBound(headcount, value, False, True, rounds, P, keep_value, hire_value)
        if rounds >= max_rounds or clock.now() - t0 > time_limit:
            return last
        # add the most negative columns of every unit that has some
        take = np.argsort(np.where(negative, all_rc, np.inf), axis=1)[:, :columns_per_round]
        iu = np.repeat(np.arange(n), take.shape[1])
        js = take.ravel()
        keep = negative[iu, js]
        new = np.column_stack([iu[keep], js[keep]])
        pairs = np.unique(np.vstack([pairs, new]), axis=0)


def _all_pairs(n: int, S: int, forced: np.ndarray) -> np.ndarray:
    pu = np.repeat(np.arange(n), S)
    ps = np.tile(np.arange(S), n)
    ok = (forced[pu] < 0) | (forced[pu] == ps)
    return np.column_stack([pu[ok], ps[ok]])


def _pair_reduced_costs(problem, scenario, sites, y, n, S, M, scale, r_bal_u, r_bal_l, r_budget):
    """``c_is (1 - y_budget) - y_i - sum_m a_im (yU_sm + yL_sm)`` for every unit and site."""
    dist = scenario.coordinates.distance(np.arange(n)[:, None], sites[None, :])
    travel = problem.travel_rate[:, None] * dist
    yu = y[r_bal_u:r_bal_u + S * M].reshape(S, M)
    yl = y[r_bal_l:r_bal_l + S * M].reshape(S, M)
    a = problem.measures / scale
    rc = travel * (1.0 - y[r_budget]) - y[:n, None] - a @ (yu + yl).T
    return rc
