"""The LP bound of a head count (or a range of head counts), by column and row generation.

For head counts ``N`` in ``[N_lo, N_hi]`` the relaxation keeps the organisation decisions (which
existing reps stay, how many hires at each site) and the assignment, drops integrality and
contiguity, and prices sales by the territory-level conjugate bound of the response (see
:func:`allocator.response.conjugate`) and the tangents of the pooled curve (see
:mod:`allocator.sizing`). With ``n_s = sum_{r based at s} keep_r + hire_s`` and ``W_m`` the total
of balance measure ``m``:

    max  margin * sigma - sum_r (cost_r - release) keep_r - hire_cost * sum_s hire_s
         - sum_{i,s} c_is x_is - R * release - managers(N_lo)
    s.t. sum_s x_is = 1                                          every unit i
         (1 - tau_m) W_m / N_hi n_s <= sum_i a_im x_is <= (1 + tau_m) W_m / N_lo n_s   every s, m
         N_lo <= sum_r keep_r + sum_s hire_s <= N_hi
         sigma_s <= lambda_l h_s + sum_i phi_i(lambda_l) x_is     every site s, price l
         sigma <= sum_s sigma_s;  sigma <= S_j + lambda_j (hours - E_j)   every tangent j
         people cost + travel <= budget
         k_i(N_lo) x_is <= n_s                                    (the strong link)
         0 <= x, keep <= 1, 0 <= hire_s <= max_hires_s.

Every plan with a head count in the range is feasible for it, so its value bounds them all; a
single head count is the range ``[N, N]``.

``k_i(N)`` is the fewest reps a territory holding unit ``i`` can have: a unit heavier than the
most one rep may carry (``(1 + tau_m) W_m / N``) needs a team, and the team size is a whole
number (Harris County, 2.5 reps' work at 14 Texas reps, needs 3). In the LP alone it moves
little: the LP splits such a unit over several sites, each share small. Once branching
(:mod:`allocator.branching`) places the unit whole, the link makes its site a team of 3 where
the balance rows alone allow 2.5. On with ``teams`` (small maps; else ``k_i = 1``).

The LP is kept in one HiGHS model and grown between warm-started solves:

- *columns*: pairs start pruned to each unit's nearest sites; pairs of negative reduced cost
  are added until none is left;
- *rows*: the strong links ``x_is <= n_s`` (one per pair: too many to state at national size)
  are added only where the solution violates them; and where a site's sales sit above the
  conjugate bound at the site's own best price (the fixed grid of 17 prices is coarse), that
  price's row is added for that site. This is the cutting-plane (Kelley) method on the concave
  territory sales; on Texas it lowers the bound of 12 reps by 0.2 %.

Any round's value plus each unit's most negative reduced cost (Farley) bounds the LP with that
round's rows and *all* columns, which is a relaxation of the full LP: the bound is valid at every
round, and the smallest one is kept when the work runs out.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import highspy
import numpy as np
from scipy import sparse

from allocator import clock
from allocator.alignment import AlignmentProblem, reps_of_work
from allocator.response import conjugate, price_grid, tightest_prices
from allocator.scenario import Scenario
from allocator.sizing import ResponseCurve, economics

INF = highspy.kHighsInf
# work of a Lagrangian bound (no LP): pricing every pair once, and each step of the search
LAGRANGIAN_SECONDS_PER_PAIR = 5e-8
LAGRANGIAN_SECONDS_PER_COLUMN = 5e-8
# a site's sales above its tightest conjugate bound by more than this share of all sales get a
# price row of their own
PRICE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LpBound:
    headcount: int  # the range's lower end (the head count itself for a single one)
    value: float  # upper bound of the objective (contribution, or minus cost)
    exact: bool  # True: the full LP (all pairs, all links) was solved to optimality
    feasible: bool
    rounds: int
    columns: int
    keep: np.ndarray | None = None  # LP value of keeping each existing rep
    hire: np.ndarray | None = None  # LP hires at each site (scenario.sites order)
    headcount_hi: int | None = None  # the range's upper end
    links: int = 0  # strong-link rows the LP needed
    parts: dict = field(default_factory=dict)  # the LP's sales, people cost and travel


class HeadcountLp:
    """The relaxation of one head-count range as a growing HiGHS model.

    Columns: keep (R) | hire (S) | sigma | sigma_s (S) | pairs (grown).
    Rows: units (n) | balance upper (S*M) | balance lower (S*M) | head count | tangents (J) |
    budget | sigma link | territory prices (S*L) | strong links and price rows of single sites
    (grown).
    """

    def __init__(self, scenario: Scenario, problem: AlignmentProblem, curve: ResponseCurve,
                 start_k: int = 12, teams: bool = False) -> None:
        s = scenario.settings
        self.scenario, self.problem, self.curve = scenario, problem, curve
        n_min, n_max = s.strategy.headcount.min, s.strategy.headcount.max
        n = self.n = scenario.n_units
        sites = self.sites = scenario.sites["unit"].to_numpy()
        S = self.S = len(sites)
        M = self.M = problem.measures.shape[1]
        econ = self.econ = economics(scenario)
        reps = scenario.reps
        R = self.R = len(reps)
        site_pos = {int(u): k for k, u in enumerate(sites)}
        self.rep_site = rep_site = np.array([site_pos[int(h)] for h in reps["home"]],
                                            dtype=np.int64)
        totals = self.totals = problem.measures.sum(axis=0)
        # measures in units of the mean per rep of the middle head count (any scale is valid)
        self.scale = np.where(totals > 0, totals / (0.5 * (n_min + n_max)), 1.0)
        self.a = problem.measures / self.scale
        keep_lo = np.zeros(R)
        if s.reps is not None and s.reps.lock == "keep":
            keep_lo[:] = 1.0
        locked_rep = problem.lock_unit
        keep_lo[np.unique(locked_rep[locked_rep >= 0])] = 1.0
        # locked units may only join their rep's site
        self.forced = np.where(locked_rep >= 0, rep_site[np.maximum(locked_rep, 0)], -1)
        self.allowed = np.ones((n, S), dtype=bool)  # the unit-site pairs a plan may use
        locked = np.flatnonzero(self.forced >= 0)
        self.allowed[locked, :] = False
        self.allowed[locked, self.forced[locked]] = True
        self.site_reps = [np.flatnonzero(rep_site == k) for k in range(S)]
        dist = scenario.coordinates.distance(np.arange(n)[:, None], sites[None, :])
        self.travel = problem.travel_rate[:, None] * dist  # (n, S)

        # every tangent is an upper bound: those up to the largest head count's hours serve all
        e_hi = float(np.sort(econ.rep_hours)[::-1][: min(R, n_max)].sum()
                     + max(0, n_max) * econ.hire_hours)
        e_lo = float(np.sort(econ.rep_hours)[::-1][: min(R, n_min)].sum()
                     + max(0, n_min - R) * econ.hire_hours)
        tangents = np.flatnonzero(curve.hours <= e_hi * 1.01)
        lo_idx = max(int(tangents.min()) - 1, 0) if len(tangents) else 0
        hi_idx = min(int(tangents.max()) + 2, len(curve.hours)) if len(tangents) else \
            len(curve.hours)
        tangents = np.arange(lo_idx, hi_idx)
        J = len(tangents)
        self.maximise = s.strategy.objective == "max_contribution"
        # hour prices spanning the marginal returns of every head count in the allowed range
        centre = float(np.sqrt(curve.marginal(e_hi) * curve.marginal(max(e_lo, 1.0))))
        spread = 3.0 * float(np.sqrt(curve.marginal(max(e_lo, 1.0)) / max(curve.marginal(e_hi),
                                                                           1e-300)))
        prices = self.prices = price_grid(centre, points=17, spread=min(spread, 1e3))
        L = self.L = len(prices)
        self.potential = scenario.units["potential"].to_numpy(float)
        self.workload = scenario.units["workload"].to_numpy(float)
        self.phi = self.conjugates(prices)

        # fixed columns
        self.kcol = np.arange(R)
        self.hcol = R + np.arange(S)
        self.sigma = R + S
        self.tcol = R + S + 1 + np.arange(S)
        self.x0 = R + 2 * S + 1
        # fixed rows
        self.r_bal_u = n
        self.r_bal_l = n + S * M
        self.r_head = n + 2 * S * M
        self.r_tan = self.r_head + 1
        self.r_budget = self.r_tan + J
        self.r_link = self.r_budget + 1
        self.r_terr = self.r_link + 1
        self.r_strong = self.r_terr + S * L
        ncols = self.x0
        nrows = self.r_strong
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def add(col, row, val):
            col = np.atleast_1d(np.asarray(col))
            entries.append((col, np.broadcast_to(np.asarray(row), col.shape),
                            np.broadcast_to(np.asarray(val, dtype=float), col.shape)))

        kcol, hcol, tcol = self.kcol, self.hcol, self.tcol
        for l in range(L):
            add(kcol, self.r_terr + rep_site * L + l, -prices[l] * econ.rep_hours)
            add(hcol, self.r_terr + np.arange(S) * L + l, -prices[l] * econ.hire_hours)
            add(tcol, self.r_terr + np.arange(S) * L + l, 1.0)
        add(self.sigma, self.r_link, 1.0)
        add(tcol, self.r_link, -1.0)
        for m in range(M):  # coefficients of the range [n_min, n_max]; set_range changes them
            tau = problem.tolerance[m]
            up = (1 + tau) * totals[m] / n_min / self.scale[m]
            lo = (1 - tau) * totals[m] / n_max / self.scale[m]
            add(kcol, self.r_bal_u + rep_site * M + m, -up)
            add(kcol, self.r_bal_l + rep_site * M + m, -lo)
            add(hcol, self.r_bal_u + np.arange(S) * M + m, -up)
            add(hcol, self.r_bal_l + np.arange(S) * M + m, -lo)
        add(kcol, self.r_head, 1.0)
        add(hcol, self.r_head, 1.0)
        lam = curve.slope[tangents]
        for j in range(J):
            add(kcol, self.r_tan + j, -lam[j] * econ.rep_hours)
            add(hcol, self.r_tan + j, -lam[j] * econ.hire_hours)
        add(np.full(J, self.sigma), self.r_tan + np.arange(J), 1.0)
        add(kcol, self.r_budget, econ.rep_cost - econ.release_cost)
        add(hcol, self.r_budget, econ.hire_cost)
        col = np.concatenate([e[0] for e in entries])
        row = np.concatenate([e[1] for e in entries])
        val = np.concatenate([e[2] for e in entries])
        order = np.lexsort((row, col))
        col, row, val = col[order], row[order], val[order]

        cost = np.zeros(ncols)
        cost[kcol] = econ.rep_cost - econ.release_cost
        cost[hcol] = econ.hire_cost
        if self.maximise:
            cost[self.sigma] = -s.strategy.margin
        lower = np.zeros(ncols)
        upper = np.ones(ncols)
        lower[kcol] = keep_lo
        upper[hcol] = np.minimum(scenario.sites["max_hires"].to_numpy(float),
                                 s.alignment.max_reps_per_territory)
        upper[self.sigma] = INF
        upper[tcol] = INF
        if not self.maximise:
            lower[self.sigma] = scenario.target_sales()
        row_lo = np.full(nrows, -INF)
        row_hi = np.zeros(nrows)
        row_lo[:n] = row_hi[:n] = 1.0
        row_hi[self.r_bal_l:self.r_bal_l + S * M] = INF
        row_lo[self.r_bal_l:self.r_bal_l + S * M] = 0.0
        row_hi[self.r_tan:self.r_tan + J] = curve.sales[tangents] - lam * curve.hours[tangents]

        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = ncols, nrows
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lower, upper
        lp.row_lower_, lp.row_upper_ = row_lo, row_hi
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(col, np.arange(ncols + 1)).astype(np.int32)
        lp.a_matrix_.index_ = row.astype(np.int32)
        lp.a_matrix_.value_ = val
        self.h = _quiet_highs()
        self.h.passModel(lp)
        self.nnz = len(val)
        self.n_lo = self.n_hi = -1
        self.last_y: np.ndarray | None = None  # row duals of the last optimal solve
        # pairs in the model (column x0 + k) and the pairs with a strong-link row
        self.pairs = np.zeros((0, 2), dtype=np.int64)
        self.in_model = np.zeros((n, S), dtype=bool)
        self.linked = np.zeros(0, dtype=bool)
        self.link_of = np.zeros(0, dtype=np.int64)  # row of each linked pair's strong link
        self.teams = teams
        self.team = np.ones(n)  # k_i: the strong link's coefficient of each unit
        self.set_range(n_min, n_max)

        # price rows added where the grid was loose: site, price, row, phi of every unit
        self.cut_site = np.zeros(0, dtype=np.int64)
        self.cut_row = np.zeros(0, dtype=np.int64)
        self.cut_phi = np.zeros((n, 0))
        near = scenario.coordinates.nearest(np.arange(n), sites, min(start_k, S))
        pu = np.repeat(np.arange(n), near.shape[1])
        ps = near.ravel()
        locked = np.flatnonzero(self.forced >= 0)
        pu = np.concatenate([pu, locked])
        ps = np.concatenate([ps, self.forced[locked]])
        self.add_pairs(pu, ps)

    def set_range(self, n_lo: int, n_hi: int) -> None:
        """Bound the head counts ``n_lo..n_hi``: the balance rows relaxed to the range's ends,
        the fewest managers of the range. Pairs, links and the basis carry over."""
        if (n_lo, n_hi) == (self.n_lo, self.n_hi):
            return
        econ, s = self.econ, self.scenario.settings
        self.n_lo, self.n_hi = n_lo, n_hi
        for m in range(self.M):
            tau = self.problem.tolerance[m]
            up = (1 + tau) * self.totals[m] / n_lo / self.scale[m]
            lo = (1 - tau) * self.totals[m] / n_hi / self.scale[m]
            for k in range(self.R):
                self.h.changeCoeff(int(self.r_bal_u + self.rep_site[k] * self.M + m),
                                   int(self.kcol[k]), -up)
                self.h.changeCoeff(int(self.r_bal_l + self.rep_site[k] * self.M + m),
                                   int(self.kcol[k]), -lo)
            for site in range(self.S):
                self.h.changeCoeff(int(self.r_bal_u + site * self.M + m), int(self.hcol[site]), -up)
                self.h.changeCoeff(int(self.r_bal_l + site * self.M + m), int(self.hcol[site]), -lo)
        self.h.changeRowBounds(int(self.r_head), float(n_lo), float(n_hi))
        # team sizes at the range's lowest head count (its reps carry the most each)
        team = self.team_sizes(n_lo) if self.teams else self.team
        unit = self.pairs[:, 0]
        self.team, old = team, self.team
        for k in np.flatnonzero(self.linked & (team[unit] != old[unit])):
            self.h.changeCoeff(int(self.link_of[k]), int(self.x0 + k), float(team[unit[k]]))
        # the fewest managers of the range: a bound for every head count in it
        self.constant = self.R * econ.release_cost + econ.managers(n_lo) * econ.manager_cost
        self.h.changeRowBounds(int(self.r_budget), -INF, float(s.strategy.budget - self.constant))

    def fork(self) -> HeadcountLp:
        """An independent copy of the model as it stands (rows, columns, bounds and basis):
        what is fixed or added in the copy never reaches this one."""
        twin = copy.copy(self)
        twin.h = _quiet_highs()
        twin.h.passModel(self.h.getLp())
        basis = self.h.getBasis()
        if basis.valid:
            twin.h.setBasis(basis)
        for name in ("allowed", "in_model", "pairs", "linked", "link_of", "team", "cut_site",
                     "cut_row", "cut_phi"):
            setattr(twin, name, getattr(self, name).copy())
        return twin

    def team_sizes(self, headcount: int) -> np.ndarray:
        """``k_i``: the fewest reps of a territory holding unit ``i`` when the organisation has
        ``headcount`` reps or more (1 for a unit one rep can carry); a wider margin than
        :func:`allocator.alignment.site_needs`, as rounding down a hair only weakens the link."""
        return np.maximum(1.0, np.ceil(reps_of_work(self.problem, headcount) - 1e-6))

    def fix_units(self, fixed) -> list[tuple[int, np.ndarray]]:
        """Place each unit of ``fixed`` (unit, site) at its site for the next solves: its other
        pairs get an upper bound of zero and are not priced in. Returns what
        :meth:`unfix_units` needs to undo it."""
        saved = [(int(i), self.allowed[i].copy()) for i, _ in fixed]
        for i, s in fixed:
            if not self.in_model[i, s]:
                self.add_pairs(np.array([i]), np.array([s]))
            self.allowed[i] = False
            self.allowed[i, s] = True
        self._set_pair_bounds([i for i, _ in fixed])
        return saved

    def unfix_units(self, saved: list[tuple[int, np.ndarray]]) -> None:
        for i, allowed in saved:
            self.allowed[i] = allowed
        self._set_pair_bounds([i for i, _ in saved])

    def _set_pair_bounds(self, units) -> None:
        """Upper bound 1 on the pair columns of ``units`` the plan may use, 0 on the others."""
        cols = np.flatnonzero(np.isin(self.pairs[:, 0], np.asarray(units, dtype=np.int64)))
        if len(cols):
            upper = self.allowed[self.pairs[cols, 0], self.pairs[cols, 1]].astype(float)
            self.h.changeColsBounds(len(cols), (self.x0 + cols).astype(np.int32),
                                    np.zeros(len(cols)), upper)

    # -- growing the model -------------------------------------------------------------------

    def add_pairs(self, pu: np.ndarray, ps: np.ndarray) -> int:
        """Add the unit-site pairs not yet in the model; return how many were new."""
        ok = self.allowed[pu, ps] & ~self.in_model[pu, ps]
        pair = np.unique(np.column_stack([pu[ok], ps[ok]]), axis=0)
        if len(pair) == 0:
            return 0
        pu, ps = pair[:, 0], pair[:, 1]
        P, M, L = len(pu), self.M, self.L
        # each column: unit row, M upper and M lower balance rows, budget, L price rows
        rows = np.column_stack([pu[:, None],
                                self.r_bal_u + ps[:, None] * M + np.arange(M)[None, :],
                                self.r_bal_l + ps[:, None] * M + np.arange(M)[None, :],
                                np.full((P, 1), self.r_budget),
                                self.r_terr + ps[:, None] * L + np.arange(L)[None, :]])
        travel = self.travel[pu, ps]
        vals = np.column_stack([np.ones((P, 1)), self.a[pu], self.a[pu], travel[:, None],
                                -self.phi[pu]])
        per = rows.shape[1]
        # and the price rows added at the pair's site
        cuts = np.argsort(self.cut_site, kind="stable")
        first = np.searchsorted(self.cut_site[cuts], np.arange(self.S))
        count = np.bincount(self.cut_site, minlength=self.S)[ps]
        offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        extra = cuts[np.repeat(first[ps], count) + offset]
        owner = np.repeat(np.arange(P), count)
        column = np.concatenate([np.repeat(np.arange(P), per), owner])
        index = np.concatenate([rows.ravel(), self.cut_row[extra]])
        value = np.concatenate([vals.ravel(), -self.cut_phi[pu[owner], extra]])
        order = np.argsort(column, kind="stable")
        starts = np.searchsorted(column[order], np.arange(P))
        self.h.addCols(P, travel, np.zeros(P), np.ones(P), len(index), starts.astype(np.int32),
                       index[order].astype(np.int32), value[order])
        self.nnz += len(index)
        self.pairs = np.vstack([self.pairs, pair])
        self.in_model[pu, ps] = True
        self.linked = np.concatenate([self.linked, np.zeros(P, dtype=bool)])
        self.link_of = np.concatenate([self.link_of, np.full(P, -1)])
        return P

    def conjugates(self, prices: np.ndarray) -> np.ndarray:
        """``phi_i(lambda)`` of every unit (rows) at each of ``prices`` (columns)."""
        response = self.scenario.settings.response
        return np.column_stack([conjugate(self.potential, self.workload, lam, response)
                                for lam in prices])

    def _add_rows(self, columns: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
        """Add rows ``columns[k] . values[k] <= 0``; return their indices."""
        K = len(columns)
        sizes = np.array([len(c) for c in columns])
        first = self.h.getNumRow()
        self.h.addRows(K, np.full(K, -INF), np.zeros(K), int(sizes.sum()),
                       (np.cumsum(sizes) - sizes).astype(np.int32),
                       np.concatenate(columns).astype(np.int32), np.concatenate(values))
        self.nnz += int(sizes.sum())
        return first + np.arange(K)

    def add_links(self, which: np.ndarray) -> None:
        """State the strong link ``k_i x_is <= n_s`` of the pairs at positions ``which``."""
        if len(which) == 0:
            return
        columns = [np.concatenate([[self.x0 + k], self.kcol[self.site_reps[s]], [self.hcol[s]]])
                   for k, s in zip(which, self.pairs[which, 1], strict=True)]
        values = [np.concatenate([[self.team[self.pairs[k, 0]]], -np.ones(len(c) - 1)])
                  for k, c in zip(which, columns, strict=True)]
        self.link_of[which] = self._add_rows(columns, values)
        self.linked[which] = True

    def add_price_rows(self, sites: np.ndarray, prices: np.ndarray) -> None:
        """State ``sigma_s <= lambda h_s + sum_i phi_i(lambda) x_is`` at each site's own price:
        the conjugate bound of the territory where the fixed grid of prices is loose."""
        if len(sites) == 0:
            return
        phi = self.conjugates(prices)
        columns, values = [], []
        for k, (s, lam) in enumerate(zip(sites, prices, strict=True)):
            at = np.flatnonzero(self.pairs[:, 1] == s)
            reps = self.site_reps[s]
            columns.append(np.concatenate([[self.tcol[s]], self.kcol[reps], [self.hcol[s]],
                                           self.x0 + at]))
            values.append(np.concatenate([[1.0], -lam * self.econ.rep_hours[reps],
                                          [-lam * self.econ.hire_hours],
                                          -phi[self.pairs[at, 0], k]]))
        rows = self._add_rows(columns, values)
        self.cut_site = np.concatenate([self.cut_site, sites])
        self.cut_row = np.concatenate([self.cut_row, rows])
        self.cut_phi = np.hstack([self.cut_phi, phi])

    def loose_prices(self, x: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
        """Sites whose territory sales in the solution ``x`` exceed their tightest conjugate
        bound by more than ``tolerance``, with that bound's price."""
        xp = x[self.x0:]
        used = xp > 1e-9
        pu, ps, w = self.pairs[used, 0], self.pairs[used, 1], xp[used]
        hours = np.zeros(self.S)
        np.add.at(hours, self.rep_site, x[self.kcol] * self.econ.rep_hours)
        hours += x[self.hcol] * self.econ.hire_hours
        response = self.scenario.settings.response
        lam = tightest_prices(self.potential, self.workload, hours, pu, ps, w, response)
        # the bound at each site's own price: lambda h + sum_i x_is phi_i(lambda)
        phi = conjugate(self.potential[pu], self.workload[pu], lam[ps], response)
        bound = lam * hours + np.bincount(ps, weights=w * phi, minlength=self.S)
        excess = x[self.tcol] - bound
        loose = np.flatnonzero((excess > tolerance) & (x[self.tcol] > 0))
        return loose, lam[loose]

    # -- solving -----------------------------------------------------------------------------

    def run(self, work_limit: float) -> bool:
        """Re-solve from the current basis within ``work_limit`` seconds; True when optimal."""
        search = clock.current()
        rows = self.h.getNumRow()
        per_iteration = (clock.lp_iteration_seconds(rows, self.nnz)
                         + int(self.linked.sum()) * clock.LP_SECONDS_PER_ITERATION_LINK)
        if search.deterministic:
            self.h.setOptionValue("simplex_iteration_limit",
                                  max(1000, int(work_limit / per_iteration)))
        # HiGHS's time limit counts from the model's first solve, so it is set past the time used
        used = self.h.getRunTime()
        if search.deterministic:
            self.h.setOptionValue("time_limit", used + clock.SAFETY * work_limit + 5.0)
        else:
            self.h.setOptionValue("time_limit", used + max(1.0, work_limit))
        self.h.run()
        if search.deterministic:
            clock.charge(self.h.getInfo().simplex_iteration_count * per_iteration)
        return self.h.getModelStatus() == highspy.HighsModelStatus.kOptimal

    def infeasible(self) -> bool:
        return self.h.getModelStatus() == highspy.HighsModelStatus.kInfeasible

    def lagrangian_bound(self, steps: int = 40) -> float:
        """Upper bound (max form) of the current range from the last solve's row duals, with
        the head-count row's multiplier searched again: no LP solve.

        Any multipliers ``y`` give a bound: the rows other than the units' are priced into the
        columns (``rc = c - A^T y``), each column sits at the bound of its box that its reduced
        cost prefers, each unit takes its cheapest site, and the rows add their bound on the
        side of their multiplier's sign (a multiplier of the wrong sign on an infinite side is
        set to zero). Only the keep and hire columns and the head-count row change with the
        range, so the head-count multiplier (the price of a rep) is searched for the range by a
        golden-section search on the concave dual function.
        """
        if self.last_y is None:
            return np.inf
        matrix, cost, col_lo, col_hi, row_lo, row_hi = self._arrays()
        y = np.zeros(matrix.shape[0])
        y[:len(self.last_y)] = self.last_y  # rows added since: multiplier zero
        y[(y > 0) & ~np.isfinite(row_lo)] = 0.0
        y[(y < 0) & ~np.isfinite(row_hi)] = 0.0
        # pairs: each unit's cheapest site (its own row kept as a constraint)
        rc_pairs = self.pair_reduced_costs(y) + y[:self.n, None]
        rc_pairs[~self.allowed] = np.inf
        pairs_part = float(rc_pairs.min(axis=1).sum())
        clock.charge(self.n * self.S * LAGRANGIAN_SECONDS_PER_PAIR)
        others = np.arange(self.x0)  # keep, hire, sigma, territory sales
        rows = np.arange(self.n, matrix.shape[0])
        head = self.r_head

        def value(mu: float) -> float:
            yy = y.copy()
            yy[head] = mu
            d = matrix[:, others].T @ yy
            rc = cost[others] - d
            tol = 1e-9 * max(1.0, float(np.abs(cost[others]).max()))
            with np.errstate(invalid="ignore"):
                part = np.where(rc > 0, rc * col_lo[others], rc * col_hi[others])
            part[np.abs(rc) <= tol] = 0.0  # basic columns, reduced cost zero up to round-off
            if not np.isfinite(part).all():
                return -np.inf
            r = yy[rows]
            with np.errstate(invalid="ignore"):
                side = np.where(r > 0, r * row_lo[rows], r * row_hi[rows])
            side[r == 0] = 0.0
            return float(part.sum() + side.sum()) + pairs_part

        # golden-section search for the multiplier maximising the (concave) dual function
        mu0 = float(y[head])
        spread = max(abs(mu0), float(np.abs(cost[:self.x0]).max()))
        lo, hi = mu0 - spread, mu0 + spread
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        fa, fb = value(a), value(b)
        best = max(value(mu0), fa, fb)
        for _ in range(steps):
            if fa < fb:
                lo, a, fa = a, b, fb
                b = lo + ratio * (hi - lo)
                fb = value(b)
            else:
                hi, b, fb = b, a, fa
                a = hi - ratio * (hi - lo)
                fa = value(a)
            best = max(best, fa, fb)
        clock.charge(steps * self.x0 * LAGRANGIAN_SECONDS_PER_COLUMN)
        return -(best + self.constant)

    def farkas_pricing(self, per_unit: int = 20) -> np.ndarray | None:
        """After an infeasible solve: ``None`` when the dual ray proves every pair set
        infeasible, else the pairs outside the model that break the proof (most first; empty
        when HiGHS gave no usable ray).

        A ray ``y`` proves ``L <= Ax <= U, l <= x <= u`` infeasible when ``max_x y.Ax`` over the
        box is below ``min_r y.r`` over the row bounds. A new pair column (bounds 0, 1) raises the
        left side by ``max(0, (A^T y)_j)``: the proof holds for all pairs if their sum leaves it
        below.
        """
        _, has_ray, ray = self.h.getDualRay()
        if not has_ray:
            return np.zeros((0, 2), dtype=np.int64)
        matrix, _, col_lo, col_hi, row_lo, row_hi = self._arrays()
        ray = np.asarray(ray, dtype=float)
        ray[np.abs(ray) < 1e-9 * np.abs(ray).max(initial=0.0)] = 0.0  # round-off, any sign
        for sign in (1.0, -1.0):
            y = sign * ray
            d = matrix.T @ y
            with np.errstate(invalid="ignore"):
                lhs = float(np.where(d > 0, d * col_hi, d * col_lo)[d != 0].sum())
                rhs = float(np.where(y > 0, y * row_lo, y * row_hi)[y != 0].sum())
            if not (np.isfinite(lhs) and np.isfinite(rhs)) or lhs >= rhs - 1e-7 * max(1.0, abs(rhs)):
                continue
            # (A^T y) of every pair: the pair's reduced cost with zero cost, sign flipped
            every = self.travel - self.pair_reduced_costs(y)
            every[self.in_model] = 0.0
            every[~self.allowed] = 0.0
            raise_by = np.maximum(every, 0.0)
            if lhs + float(raise_by.sum()) < rhs - 1e-7 * max(1.0, abs(rhs)):
                return None
            take = np.argsort(-raise_by, axis=1)[:, :per_unit]
            iu = np.repeat(np.arange(self.n), take.shape[1])
            js = take.ravel()
            keep = raise_by[iu, js] > 0
            return np.column_stack([iu[keep], js[keep]])
        return np.zeros((0, 2), dtype=np.int64)

    def _arrays(self):
        """The model as it stands: matrix (CSC), costs, column and row bounds."""
        lp = self.h.getLp()
        matrix = sparse.csc_matrix((np.asarray(lp.a_matrix_.value_),
                                    np.asarray(lp.a_matrix_.index_),
                                    np.asarray(lp.a_matrix_.start_)),
                                   shape=(lp.num_row_, lp.num_col_))
        return (matrix, np.asarray(lp.col_cost_), np.asarray(lp.col_lower_),
                np.asarray(lp.col_upper_), np.asarray(lp.row_lower_), np.asarray(lp.row_upper_))

    def pair_reduced_costs(self, y: np.ndarray) -> np.ndarray:
        """Reduced cost (min form) of every unit-site pair: ``c - A^T y``."""
        S, M, L = self.S, self.M, self.L
        yu = y[self.r_bal_u:self.r_bal_u + S * M].reshape(S, M)
        yl = y[self.r_bal_l:self.r_bal_l + S * M].reshape(S, M)
        rc = (self.travel * (1.0 - y[self.r_budget]) - y[:self.n, None] - self.a @ (yu + yl).T
              + self.phi @ y[self.r_terr:self.r_terr + S * L].reshape(S, L).T)
        linked = np.flatnonzero(self.linked)
        units = self.pairs[linked, 0]
        rc[units, self.pairs[linked, 1]] -= self.team[units] * y[self.link_of[linked]]
        np.add.at(rc, (slice(None), self.cut_site), self.cut_phi * y[self.cut_row])
        return rc


def _quiet_highs() -> highspy.Highs:
    """A HiGHS instance for the head-count LP: silent, on one thread."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


def headcount_lp_bound(scenario: Scenario, problem: AlignmentProblem, headcount: int,
                       curve: ResponseCurve, *, headcount_hi: int | None = None,
                       model: HeadcountLp | None = None, start_k: int = 12,
                       time_limit: float = 10.0, max_rounds: int = 200,
                       columns_per_round: int = 20, links_per_round: int = 4000,
                       strong_links: bool = True, price_rows: bool = True) -> LpBound:
    """Upper bound of every plan with ``headcount`` (to ``headcount_hi``) reps.

    Rounds alternate pricing pairs in and stating violated strong links until neither is left;
    then sites whose sales the grid of prices bounds loosely get a price row at their own
    tightest price (``price_rows``), and the rounds go on until nothing is left (the exact LP, up
    to ``PRICE_TOLERANCE``) or ``time_limit`` seconds of work are spent (the best valid bound so
    far).
    A ``model`` from an earlier call is re-used warm: its pairs and links stay valid for every
    head count.
    """
    n_hi = headcount if headcount_hi is None else headcount_hi
    t0 = clock.now()
    if model is None:
        model = HeadcountLp(scenario, problem, curve, start_k)
    model.set_range(headcount, n_hi)
    n, S = model.n, model.S
    best: LpBound | None = None
    rounds = 0

    def result(value, exact, x=None, links=0, parts=None):
        keep = hire = None
        if x is not None:
            keep, hire = x[model.kcol], x[model.hcol]
        return LpBound(headcount, value, exact, True, rounds, len(model.pairs), keep, hire,
                       headcount_hi, links, parts or {})

    while True:
        rounds += 1
        left = time_limit - (clock.now() - t0)
        optimal = model.run(max(0.5, left))
        if model.infeasible():
            # infeasible with these pairs: proven for all pairs by the Farkas ray, or the pairs
            # that break the proof are priced in
            breaking = model.farkas_pricing()
            if breaking is None:
                return LpBound(headcount, -np.inf, True, False, rounds, len(model.pairs),
                               headcount_hi=headcount_hi)
            if not len(breaking) or rounds >= max_rounds or clock.now() - t0 > time_limit:
                return best if best is not None else result(np.inf, False)
            model.add_pairs(breaking[:, 0], breaking[:, 1])
            continue
        if not optimal:
            # out of work inside the LP: no valid dual from this round
            return best if best is not None else result(np.inf, False)
        info = model.h.getInfo()
        solution = model.h.getSolution()
        z = -(info.objective_function_value + model.constant)  # the max form
        y = np.asarray(solution.row_dual)
        x = np.asarray(solution.col_value)
        model.last_y = y.copy()
        rc = model.pair_reduced_costs(y)
        pu, ps = model.pairs[:, 0], model.pairs[:, 1]
        xp = x[model.x0:]
        rc[~model.allowed] = np.inf  # a locked unit may only join its rep's site
        # Farley: any solution of the relaxation with all columns costs at least
        # y.b + (rc of the other columns as now) + each unit's least pair rc
        ok = model.allowed[pu, ps]  # pairs a fixing closed sit at zero
        used = float((rc[pu[ok], ps[ok]] * xp[ok]).sum())
        value = z + used - float(rc.min(axis=1).sum())
        staffed = np.zeros(S)
        np.add.at(staffed, model.rep_site, x[model.kcol])
        staffed += x[model.hcol]
        parts = {"sales": float(x[model.sigma]),
                 "people_cost": float(model.econ.rep_cost @ x[model.kcol]
                                      - model.econ.release_cost * x[model.kcol].sum()
                                      + model.econ.hire_cost * x[model.hcol].sum()
                                      + model.constant),
                 "travel": float(model.travel[pu, ps] @ xp)}
        bound = result(value, False, x, int(model.linked.sum()), parts)
        if best is None or value < best.value:
            best = bound
        tolerance = 1e-7 * max(1.0, abs(info.objective_function_value))
        negative = rc < -tolerance
        negative[pu, ps] = False  # pairs in the model may price negative at their upper bound
        # strong links the solution violates
        cuts = np.empty(0, dtype=np.int64)
        if strong_links:
            excess = model.team[pu] * xp - staffed[ps]
            cuts = np.flatnonzero((excess > 1e-6) & ~model.linked)
            cuts = cuts[np.argsort(-excess[cuts], kind="stable")][:links_per_round]
        # sites whose sales the fixed grid of prices bounds loosely: once the pairs and links
        # are settled (price rows added earlier slow those rounds down more than they gain)
        loose = loose_price = np.zeros(0, dtype=np.int64)
        if price_rows and not negative.any() and len(cuts) == 0:
            loose, loose_price = model.loose_prices(x, PRICE_TOLERANCE
                                                    * max(1.0, parts["sales"]))
        if not negative.any() and len(cuts) == 0 and len(loose) == 0:
            return dataclasses.replace(bound, value=z, exact=True)
        if rounds >= max_rounds or clock.now() - t0 > time_limit:
            return best
        model.add_price_rows(loose, loose_price)
        take = np.argsort(np.where(negative, rc, np.inf), axis=1)[:, :columns_per_round]
        iu = np.repeat(np.arange(n), take.shape[1])
        js = take.ravel()
        new = negative[iu, js]
        model.add_pairs(iu[new], js[new])
        model.add_links(cuts)

