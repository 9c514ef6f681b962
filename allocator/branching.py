"""Branch and bound on where the heavy units go: a tighter bound of one head count.

The LP of a head count (:mod:`allocator.bounds`) splits a unit that needs a team over several
sites: Harris County, 2.5 reps' work at 14 reps in Texas, sits a quarter each at four sites of
about one rep, so no site needs a team and every band is filled with a fraction of the county.
An integer plan puts the county in one territory of at least three reps and must then fill
that territory's band too. The strong link ``k_i x_is <= n_s`` cannot see this (each share is
small); branching does.

A node fixes some units to sites; its bound is its LP's (valid for every plan that places those
units so). Expanding a node takes the heaviest unit its LP splits (workload over what one rep
may carry, times the share off its main site) and makes one child per site the unit may join:
the children partition the node's plans, so the largest bound over the leaves bounds the head
count. Children start with their parent's bound and are solved one by one, largest bound
first (best-first search), so the search can stop after any LP and its bound is valid. The LP
model is shared with the other head counts: fixings are applied to it for one solve and undone
(bounds of the fixed units' pair columns, and which sites the column pricing may add).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from allocator import clock
from allocator.alignment import reps_of_work
from allocator.bounds import HeadcountLp, headcount_lp_bound

# a unit whose largest share of one site is below 1 - this is split
SPLIT = 1e-6
# work for one node's LP at most (a warm child LP on Texas takes a few hundredths)
NODE_SECONDS = 5.0


@dataclass
class Node:
    bound: float
    fixed: tuple[tuple[int, int], ...]  # (unit, site) pairs
    solved: bool = False
    unit: int = -1  # the unit to branch on (-1: none is split; the node's bound is final)
    sites: tuple[int, ...] = ()  # its allowed sites, most used by the LP first
    keep: np.ndarray | None = None  # the LP's staffing: existing reps kept, hires by site
    hire: np.ndarray | None = None


class HeadcountBranching:
    """Best-first branch and bound of one head count on the units' sites."""

    def __init__(self, model: HeadcountLp, headcount: int, bound: float) -> None:
        self.model, self.headcount = model, headcount
        self.leaves: list[Node] = [Node(bound, ())]
        self.solves = 0
        self.expanded = 0
        self.weight = reps_of_work(model.problem, headcount)

    def bound(self) -> float:
        return max((leaf.bound for leaf in self.leaves), default=-math.inf)

    def staffing(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The LP staffing (keep, hire) of the solved leaf of largest bound."""
        solved = [leaf for leaf in self.leaves if leaf.solved and leaf.keep is not None]
        if not solved:
            return None
        leaf = max(solved, key=lambda node: node.bound)
        return leaf.keep, leaf.hire

    def expand_root(self, deadline: float) -> None:
        """Solve the root, split its heaviest split unit and solve every child."""
        while clock.now() < deadline and (self.expanded == 0 or
                                          not all(leaf.solved for leaf in self.leaves)):
            if not self.step(deadline):
                break

    def step(self, deadline: float) -> bool:
        """Solve or expand the leaf of largest bound; False when nothing is left to do."""
        open_leaves = [leaf for leaf in self.leaves if not (leaf.solved and leaf.unit < 0)]
        if not open_leaves:
            return False
        # the largest bound first; unsolved before solved at a tie (children of the node just
        # expanded carry its bound until solved)
        leaf = max(open_leaves, key=lambda node: (node.bound, not node.solved))
        if leaf.bound < self.bound():  # a finished leaf holds the bound: nothing can lower it
            return False
        if not leaf.solved:
            self._solve(leaf, deadline)
            return True
        self.leaves.remove(leaf)
        self.expanded += 1
        self.leaves.extend(Node(leaf.bound, leaf.fixed + ((leaf.unit, s),))
                           for s in leaf.sites)
        return True

    def _solve(self, node: Node, deadline: float) -> None:
        model = self.model
        saved = model.fix_units(node.fixed)
        try:
            lp = headcount_lp_bound(model.scenario, model.problem, self.headcount, model.curve,
                                    model=model, time_limit=max(0.5, min(
                                        NODE_SECONDS, deadline - clock.now())))
            x = np.asarray(model.h.getSolution().col_value) if lp.feasible and lp.exact \
                else None
        finally:
            model.unfix_units(saved)
        self.solves += 1
        node.solved = True
        if not lp.feasible:  # no plan places these units so
            self.leaves.remove(node)
            return
        node.bound = min(node.bound, lp.value)
        node.keep, node.hire = lp.keep, lp.hire
        if x is None:  # not solved to the end: its bound holds, but no split is known
            node.unit = -1
            return
        # the heaviest split unit, weighted by how much of it sits off its main site
        xp = x[model.x0:]
        pu, ps = model.pairs[:, 0], model.pairs[:, 1]
        main = np.zeros(model.n)
        np.maximum.at(main, pu, xp)
        score = self.weight * (1.0 - main)  # a fixed unit sits whole at its site: 0
        score[main >= 1.0 - SPLIT] = 0.0
        if not (score > 0).any():
            node.unit = -1
            return
        unit = int(np.argmax(score))
        share = np.zeros(model.S)
        mine = pu == unit
        share[ps[mine]] = xp[mine]
        allowed = np.flatnonzero(model.allowed[unit])
        node.unit = unit
        node.sites = tuple(int(s) for s in allowed[np.argsort(-share[allowed], kind="stable")])
