"""Sales response to selling effort, and the best spread of effort over units.

For unit ``i`` with potential ``p_i`` and workload ``w_i`` (the hours of full coverage), effort
``e`` (hours) yields expected sales

    s_i(e) = p_i * (f + (c - f) * (1 - 2 ** (-(e / w_i) / h))),   0 <= e <= m * w_i,

with ``f`` the floor share (sold with no effort), ``c`` the ceiling share (saturation), ``h`` the
coverage that closes half the gap, and ``m`` the largest coverage worth planning. ``s_i`` is
concave and saturating. A unit with no workload needs no effort and sells at the floor.

A rep (or a territory, or the whole force in the sizing bound) with ``E`` effective hours spreads
them to maximise total sales; by concavity the optimum equalises the marginal return ``lambda``
(water-filling):

    e_i(lambda) = clip(h * w_i * log2(a_i / lambda), 0, m * w_i),   a_i = p_i (c - f) ln 2 / (h w_i),

and ``lambda`` is found by bisection so that the hours add up to ``E``.
"""

from __future__ import annotations

import numpy as np

from allocator.settings import ResponseSpec

LN2 = float(np.log(2.0))


def marginal_at_zero(potential: np.ndarray, workload: np.ndarray,
                     spec: ResponseSpec) -> np.ndarray:
    """Each unit's return on its first hour, ``a_i = p_i (c - f) ln 2 / (h w_i)`` (zero for a
    unit without workload)."""
    active = workload > 0
    slope = np.zeros_like(potential, dtype=float)
    slope[active] = potential[active] * (spec.ceiling - spec.floor) * LN2 / (
        spec.half * workload[active])
    return slope


def unit_sales(potential: np.ndarray, workload: np.ndarray, effort: np.ndarray,
               spec: ResponseSpec) -> np.ndarray:
    """Expected sales of each unit at the given effort (hours)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        coverage = np.where(workload > 0, effort / np.where(workload > 0, workload, 1.0), 0.0)
    coverage = np.minimum(coverage, spec.max_coverage)
    lift = 1.0 - np.exp2(-coverage / spec.half)
    return potential * (spec.floor + (spec.ceiling - spec.floor) * lift)


def spread_effort(potential: np.ndarray, workload: np.ndarray, hours: np.ndarray,
                  group: np.ndarray, spec: ResponseSpec, iterations: int = 80) -> np.ndarray:
    """Best effort per unit when each group ``g`` (a territory) has ``hours[g]`` to spend.

    ``group[i]`` is the group of unit ``i``. Exact up to the bisection tolerance (relative 1e-12
    of ``lambda`` after 80 halvings of the log-interval).
    """
    groups = len(hours)
    active = workload > 0
    slope = marginal_at_zero(potential, workload, spec)
    cap = spec.max_coverage * workload
    full = np.bincount(group, weights=cap, minlength=groups)
    saturated = hours >= full
    # bisection on log(lambda) per group, between a tiny and the largest slope of the group
    top = np.full(groups, 1e-300)
    np.maximum.at(top, group, slope)
    low = np.log(np.maximum(top, 1e-300)) - 60.0
    high = np.log(np.maximum(top, 1e-300))
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        effort = effort_at_price(slope, workload, cap, np.exp(mid)[group], spec)
        used = np.bincount(group, weights=effort, minlength=groups)
        too_much = used > hours
        low = np.where(too_much, mid, low)
        high = np.where(too_much, high, mid)
    effort = effort_at_price(slope, workload, cap, np.exp(high)[group], spec)
    # the bisection leaves a sliver of each group's hours unspent: hand it out pro rata to the
    # units not yet at their cap, so that the hours add up exactly
    used = np.bincount(group, weights=effort, minlength=groups)
    room = np.where(active, cap - effort, 0.0)
    room_total = np.bincount(group, weights=room, minlength=groups)
    share = np.divide(np.maximum(hours - used, 0.0), room_total,
                      out=np.zeros(groups), where=room_total > 0)
    effort = effort + room * np.minimum(share, 1.0)[group]
    return np.where(saturated[group], cap, effort)


def effort_at_price(slope, workload, cap, lam, spec: ResponseSpec) -> np.ndarray:
    """Each unit's best effort when an hour is priced at ``lam``: where its marginal return,
    falling from ``slope`` at no effort, meets the price (within ``[0, cap]``)."""
    with np.errstate(divide="ignore"):
        ratio = np.log2(np.where(slope > 0, slope, 1.0) / lam)
    effort = np.where(slope > 0, spec.half * workload * ratio, 0.0)
    return np.clip(effort, 0.0, cap)


def pooled_sales(potential: np.ndarray, workload: np.ndarray, hours: float,
                 spec: ResponseSpec) -> float:
    """Most sales ``hours`` can buy when spent anywhere: an upper bound for any territory split."""
    group = np.zeros(len(potential), dtype=np.int64)
    effort = spread_effort(potential, workload, np.array([hours]), group, spec)
    return float(unit_sales(potential, workload, effort, spec).sum())


def conjugate(potential: np.ndarray, workload: np.ndarray, lam: float | np.ndarray,
              spec: ResponseSpec) -> np.ndarray:
    """``phi_i(lambda) = max_e s_i(e) - lambda e`` for every unit (the sales less the hours priced
    at ``lambda``, at the best effort); ``lam`` is one price or one per unit.

    For any territory ``t`` with ``h_t`` hours, weak duality gives the bound that is linear in the
    assignment: ``S_t(h_t) <= lambda h_t + sum_{i in t} phi_i(lambda)`` for every ``lambda > 0``.
    """
    slope = marginal_at_zero(potential, workload, spec)
    effort = effort_at_price(slope, workload, spec.max_coverage * workload, lam, spec)
    return unit_sales(potential, workload, effort, spec) - lam * effort


def price_grid(centre: float, points: int = 13, spread: float = 2.0) -> np.ndarray:
    """Hour prices around ``centre``, geometric, from ``centre / spread`` to ``centre * spread``."""
    return centre * np.exp2(np.linspace(-np.log2(spread), np.log2(spread), points))


def tightest_prices(potential: np.ndarray, workload: np.ndarray, hours: np.ndarray,
                    unit: np.ndarray, group: np.ndarray, weight: np.ndarray,
                    spec: ResponseSpec, iterations: int = 60) -> np.ndarray:
    """The price ``lambda_g`` that makes the conjugate bound of each group tightest.

    Group ``g`` holds units ``unit[k]`` with weights ``weight[k]`` (a fractional territory of the
    LP relaxation) and ``hours[g]``. Its bound ``lambda hours_g + sum_k weight_k phi_unit(lambda)``
    is convex in ``lambda``, with slope ``hours_g - sum_k weight_k e_unit(lambda)``: bisection on
    ``log lambda`` finds where the weighted effort at the price matches the hours. A group whose
    hours saturate every unit gets the smallest price searched (its bound is flat below it).
    """
    groups = len(hours)
    slope = marginal_at_zero(potential, workload, spec)
    cap = spec.max_coverage * workload
    top = np.full(groups, 1e-300)
    np.maximum.at(top, group, slope[unit])
    high = np.log(np.maximum(top, 1e-300))
    low = high - 60.0
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        effort = effort_at_price(slope[unit], workload[unit], cap[unit], np.exp(mid)[group], spec)
        used = np.bincount(group, weights=weight * effort, minlength=groups)
        too_little = used < hours  # hours left over: the price is too high
        high = np.where(too_little, mid, high)
        low = np.where(too_little, low, mid)
    return np.exp(0.5 * (low + high))
