"""A staffing from the head-count LP by diving: fix what the LP decides, re-solve, repeat.

Rounding the LP's staffing in one step (:func:`allocator.alignment.staffing_from_lp`) moves
every fractional keep and hire at once, and the assignment LP then finds sites staffed where
the work is not (on the demo the LP with the rounded staffing fixed is worth 0.77 M less than
the LP, with the dived staffing 0.08 M less). A dive rounds in steps instead: the keeps and hires the LP leaves whole are fixed, then
the half of the fractional ones nearest a whole number, and the LP re-solves around them (its
pairs and strong links go on growing), until only a few are fractional; those are rounded as
before. Heavy units (more work than one rep carries) are first placed whole at the site that
holds most of them, so their team is staffed whole. The dive works on a copy of the model
(:meth:`allocator.bounds.HeadcountLp.fork`): the fixings must not reach the bounds.
"""

from __future__ import annotations

import numpy as np

from allocator import clock
from allocator.alignment import reps_of_work
from allocator.bounds import HeadcountLp, headcount_lp_bound

# of the dive's time: continuing the LP towards its optimum before the first fixing
FIRST_SHARE = 0.45
# of the fractional keeps and hires fixed in each step (nearest a whole number first), with
# every one within NEAR of a whole number
ROUND_SHARE = 0.5
NEAR = 0.1
# the dive stops with this many fractional keeps and hires or fewer: they are rounded
LEFT = 8
# LP rounds after each fixing (pairs and links the fixing calls for; not to optimality)
STEP_ROUNDS = 3
WHOLE = 1e-6  # a value this close to a whole number is whole


def dive_staffing(model: HeadcountLp, headcount: int, deadline: float
                  ) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Keep values of the existing reps, hires at each site and how many of them were left
    fractional, for ``headcount`` reps; ``None`` when the LP found nothing in the time."""
    scenario, problem, curve = model.scenario, model.problem, model.curve
    dive = model.fork()

    def resolve(until: float, **options):
        return headcount_lp_bound(scenario, problem, headcount, curve, model=dive,
                                  price_rows=False, time_limit=max(0.5, until - clock.now()),
                                  **options)

    lp = resolve(clock.now() + FIRST_SHARE * max(0.0, deadline - clock.now()))
    if lp.keep is None:
        return None
    # heavy units whole at the site that holds most of them: their teams are staffed whole
    heavy = np.flatnonzero(reps_of_work(problem, headcount) >= 1.0)
    if len(heavy):
        x = np.asarray(dive.h.getSolution().col_value)[dive.x0:]
        share = np.zeros((len(heavy), dive.S))
        mine = np.flatnonzero(np.isin(dive.pairs[:, 0], heavy))
        np.add.at(share, (np.searchsorted(heavy, dive.pairs[mine, 0]), dive.pairs[mine, 1]),
                  x[mine])
        saved = dive.fix_units(list(zip(heavy.tolist(), share.argmax(axis=1).tolist(),
                                        strict=True)))
        placed = resolve(deadline, max_rounds=STEP_ROUNDS)
        if placed.feasible and placed.keep is not None:
            lp = placed
        else:  # no staffing holds them whole there (or no time): they stay free
            dive.unfix_units(saved)
    keep, hire = lp.keep, lp.hire
    columns = np.concatenate([dive.kcol, dive.hcol])
    model_lp = dive.h.getLp()
    lower = np.asarray(model_lp.col_lower_)[columns]
    upper = np.asarray(model_lp.col_upper_)[columns]
    fixed = np.zeros(len(columns), dtype=bool)
    while True:
        value = np.concatenate([keep, hire])
        off = np.abs(value - np.round(value))
        fractional = np.flatnonzero((off > WHOLE) & ~fixed)
        if len(fractional) <= LEFT or clock.now() >= deadline:
            return keep, hire, len(fractional)
        whole = np.flatnonzero((off <= WHOLE) & ~fixed)
        nearest = fractional[np.argsort(off[fractional], kind="stable")]
        take = max(1, int(np.ceil(ROUND_SHARE * len(fractional))))
        steps = [np.concatenate([whole, np.union1d(nearest[:take],
                                                   fractional[off[fractional] < NEAR])])]
        # a fixing that leaves no staffing (a heavy unit's site rounded below its team, the
        # head count or the budget out of reach) is backed off: fewer, nearest first
        while take > 1:
            take //= 2
            steps.append(nearest[:take])
        for step in steps:
            target = np.round(value[step])
            dive.h.changeColsBounds(len(step), columns[step].astype(np.int32), target, target)
            lp = resolve(deadline, max_rounds=STEP_ROUNDS)
            if lp.feasible and lp.keep is not None:
                fixed[step] = True
                keep, hire = lp.keep, lp.hire
                break
            dive.h.changeColsBounds(len(step), columns[step].astype(np.int32), lower[step],
                                    upper[step])
            if clock.now() >= deadline:
                return keep, hire, len(fractional)
        else:  # not even the nearest one can be fixed: the last LP's staffing is rounded
            return keep, hire, len(fractional)
