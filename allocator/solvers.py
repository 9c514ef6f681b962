"""Run a PuLP model on OR-Tools CP-SAT, HiGHS or CBC with a start, a time limit and a gap.

CP-SAT takes integer data only: each row is scaled to integer coefficients and rounded towards
the feasible side (a ``<=`` row's coefficients up and its right-hand side down, for variables
that are non-negative), so every CP-SAT solution is feasible for the original row. Continuous
variables become integers (flows are integral anyway; sales in whole currency units).

CBC runs as a child process; it has overrun its own time limit, so the limit is enforced from
outside: after the limit plus a grace period it is interrupted, then killed.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from dataclasses import dataclass

import highspy
import numpy as np
import pulp
from ortools.sat.python import cp_model

from allocator import clock
from allocator.exceptions import SolverError

SOLVERS = ("cpsat", "highs", "cbc")


@dataclass(frozen=True)
class MipOutcome:
    status: str  # optimal | feasible | infeasible | no_solution
    objective: float | None  # in the model's own sense
    bound: float | None
    runtime_s: float


def solve_mip(model: pulp.LpProblem, solver: str, *, time_limit: float, gap: float, seed: int,
              threads: int, warm_start: bool = True,
              node_limit: int | None = None) -> MipOutcome:
    """Solve ``model`` in place (variable values are set) and report status and bound.

    ``node_limit`` stops HiGHS and CBC after that many branch-and-bound nodes. They offer no
    deterministic measure of work, so a search that needs the same answer on a busy and an idle
    machine gives them a node limit and a generous ``time_limit`` as the safety stop. CP-SAT
    needs none: its limit is already in deterministic time.
    """
    started = time.perf_counter()
    if solver == "cpsat":
        outcome = _solve_cpsat(model, time_limit, gap, seed, threads, warm_start)
    elif solver == "highs":
        outcome = _solve_highs(model, time_limit, gap, seed, threads, warm_start, node_limit)
    elif solver == "cbc":
        outcome = _solve_cbc(model, time_limit, gap, seed, threads, warm_start, node_limit)
    else:
        raise SolverError(f"unknown solver {solver!r}; choose one of {SOLVERS}")
    elapsed = time.perf_counter() - started
    if solver != "cpsat":  # no deterministic measure of their work: the wall time is charged
        clock.charge(elapsed)
    return MipOutcome(outcome[0], outcome[1], outcome[2], elapsed)


# Work of HiGHS's and CBC's branch and bound, counted for the search clock. Measured on the
# 2-core development machine on the demo's transfer plan (allocator.transfers; 3,842 rows,
# 4,359 columns): about 0.3 ms per simplex iteration of the whole search (cuts, heuristics
# and presolve included), seven times the cost of an iteration of a plain LP of that size;
# about 16 ms per node.
MIP_WORK_PER_LP_ITERATION = 7.0  # times clock.lp_iteration_seconds of the model's size
MIP_SECONDS_PER_NODE_PER_NONZERO = 1.0e-6
MIN_NODES = 50
# presolve, probing and the root's cuts cost HiGHS time that its iteration count misses (a
# plan with 4 layers solved at the root in about 10 s of 2 s of iterations): a floor per
# non-zero of the model
MIP_SECONDS_PER_NONZERO = 1.0e-4
CBC_START_SECONDS = 0.2  # CBC runs as a child process, its model written to a file
SAFETY_WALL = 120.0  # seconds of wall time, on top of the safety factor, before a solve stops


def solve_counted(model: pulp.LpProblem, solver: str, *, work: float, gap: float, seed: int,
                  threads: int, warm_start: bool = True) -> MipOutcome:
    """:func:`allocator.solvers.solve_mip` stopped by counted work, so that the same model
    gives the same answer on a busy and an idle machine.

    On the work clock (``solver.deterministic``): CP-SAT stops on its deterministic time;
    HiGHS and CBC stop on a node limit worth ``work`` seconds for the model's size, with a wall
    limit far above it as the safety stop only. The search clock is charged what the solve
    counted (CP-SAT's deterministic time; HiGHS's simplex iterations, at least a part per
    non-zero; for CBC, which reports no count through PuLP, the work allowed unless it proved
    optimality, then its start and a part per non-zero),
    never the wall seconds it took. On the wall clock, a plain time limit.
    """
    search = clock.current()
    if not search.deterministic or solver == "cpsat":
        return solve_mip(model, solver, time_limit=work, gap=gap, seed=seed, threads=threads,
                         warm_start=warm_start)
    rows = len(model.constraints)
    nonzeros = sum(len(c) for c in model.constraints.values())
    nodes = max(MIN_NODES, int(work / (MIP_SECONDS_PER_NODE_PER_NONZERO * max(1, nonzeros))))
    scratch = clock.SearchClock(True, float("inf"))  # takes solve_mip's wall-time charge
    with clock.running(scratch):
        outcome = solve_mip(model, solver, time_limit=clock.SAFETY * work + SAFETY_WALL,
                            gap=gap, seed=seed, threads=threads, warm_start=warm_start,
                            node_limit=nodes)
    if solver == "highs":
        iterations = int(model.solverModel.getInfo().simplex_iteration_count)
        search.charge(max(iterations * MIP_WORK_PER_LP_ITERATION
                          * clock.lp_iteration_seconds(rows, nonzeros),
                          nonzeros * MIP_SECONDS_PER_NONZERO))
    else:  # CBC: the work allowed, or, once optimality is proved, its start and the model's size
        search.charge(work if outcome.status != "optimal" else min(
            work, CBC_START_SECONDS + nonzeros * MIP_SECONDS_PER_NONZERO))
    return outcome


# -- CP-SAT ----------------------------------------------------------------------------------

def _integer_row(coefficients: list[float], rhs: float, sense: int) -> tuple[list[int], int]:
    """Scale a row to integers, rounding towards the feasible side."""
    values = [abs(c) for c in coefficients if c != 0] + ([abs(rhs)] if rhs else [])
    if all(float(v).is_integer() for v in values):
        return [int(c) for c in coefficients], int(rhs)
    top = max(values) if values else 1.0
    scale = 10 ** max(0, min(6, 12 - int(math.ceil(math.log10(top + 1)))))
    if sense == pulp.LpConstraintLE:
        coefs = [math.ceil(c * scale - 1e-9) for c in coefficients]
        return coefs, math.floor(rhs * scale + 1e-9)
    if sense == pulp.LpConstraintGE:
        coefs = [math.floor(c * scale + 1e-9) for c in coefficients]
        return coefs, math.ceil(rhs * scale - 1e-9)
    return [round(c * scale) for c in coefficients], round(rhs * scale)


def _solve_cpsat(model, time_limit, gap, seed, threads, warm_start):
    cp = cp_model.CpModel()
    variables = model.variables()
    cpvars = {}
    for var in variables:
        low = -10**12 if var.lowBound is None else math.ceil(var.lowBound - 1e-9)
        high = 10**12 if var.upBound is None else math.floor(var.upBound + 1e-9)
        cpvars[var.name] = cp.new_int_var(low, high, var.name)
        if warm_start and var.varValue is not None:
            cp.add_hint(cpvars[var.name], int(round(var.varValue)))
    for constraint in model.constraints.values():
        items = list(constraint.items())
        rhs = -constraint.constant
        coefs, bound = _integer_row([c for _, c in items], rhs, constraint.sense)
        expr = sum(k * cpvars[v.name] for (v, _), k in zip(items, coefs, strict=True) if k)
        if constraint.sense == pulp.LpConstraintLE:
            cp.add(expr <= bound)
        elif constraint.sense == pulp.LpConstraintGE:
            cp.add(expr >= bound)
        else:
            cp.add(expr == bound)
    obj_items = list(model.objective.items())
    obj_scale = 100.0
    objective = sum(round(c * obj_scale) * cpvars[v.name] for v, c in obj_items)
    if model.sense == pulp.LpMaximize:
        cp.maximize(objective)
    else:
        cp.minimize(objective)
    engine = cp_model.CpSolver()
    if clock.current().deterministic:
        # in CP-SAT's deterministic time, so that the answer does not depend on machine load;
        # the wall clock only as a safety stop
        engine.parameters.max_deterministic_time = max(0.1, time_limit) / \
            clock.CPSAT_SECONDS_PER_DETERMINISTIC_SECOND
        engine.parameters.max_time_in_seconds = clock.SAFETY * max(0.1, time_limit) + 1.0
    else:
        engine.parameters.max_time_in_seconds = max(0.1, time_limit)
    engine.parameters.relative_gap_limit = gap
    engine.parameters.random_seed = seed
    engine.parameters.num_workers = threads
    code = engine.solve(cp)
    clock.charge(engine.response_proto.deterministic_time
                 * clock.CPSAT_SECONDS_PER_DETERMINISTIC_SECOND)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return ("infeasible" if code == cp_model.INFEASIBLE else "no_solution", None, None)
    for var in variables:
        var.varValue = float(engine.value(cpvars[var.name]))
    constant = model.objective.constant
    value = pulp.value(model.objective)
    bound = engine.best_objective_bound / obj_scale + constant
    return ("optimal" if code == cp_model.OPTIMAL else "feasible", value, bound)


# -- HiGHS (through PuLP, with a start) -------------------------------------------------------

class _HighsWithStart(pulp.HiGHS):
    """PuLP's HiGHS interface, handing the variables' current values over as a start."""

    def __init__(self, start: bool, seed: int, node_limit: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.start = start
        self.seed = seed
        self.node_limit = node_limit

    def callSolver(self, lp):
        lp.solverModel.setOptionValue("random_seed", self.seed)
        if self.node_limit is not None:
            lp.solverModel.setOptionValue("mip_max_nodes", int(self.node_limit))
        if self.start:
            values = [0.0 if v.varValue is None else float(v.varValue) for v in lp.variables()]
            solution = highspy.HighsSolution()
            solution.col_value = values
            solution.value_valid = True
            lp.solverModel.setSolution(solution)
        lp.solverModel.run()

    def findSolutionValues(self, lp):
        # PuLP maps only some of HiGHS's stops to a status; a node limit reports
        # kSolutionLimit, which it does not know. The values are set before it looks the
        # status up, and ``_solve_highs`` reads the status from HiGHS itself.
        try:
            return super().findSolutionValues(lp)
        except KeyError:
            found = lp.solverModel.getInfo().primal_solution_status == 2
            return (pulp.LpStatusNotSolved, pulp.LpSolutionIntegerFeasible if found
                    else pulp.LpSolutionNoSolutionFound)


def _solve_highs(model, time_limit, gap, seed, threads, warm_start, node_limit=None):
    engine = _HighsWithStart(warm_start, seed, node_limit, msg=False, timeLimit=time_limit,
                             gapRel=gap, threads=threads)
    model.solve(engine)
    highs = model.solverModel
    status = highs.getModelStatus()
    info = highs.getInfo()
    if info.primal_solution_status != 2:  # no feasible solution
        if status == highspy.HighsModelStatus.kInfeasible:
            return ("infeasible", None, None)
        return ("no_solution", None, None)
    value = pulp.value(model.objective)
    # PuLP hands HiGHS the objective without its constant, negated when maximising
    bound = info.mip_dual_bound
    if not math.isfinite(bound):
        bound = None
    elif model.sense == pulp.LpMaximize:
        bound = -bound + model.objective.constant
    else:
        bound = bound + model.objective.constant
    optimal = status == highspy.HighsModelStatus.kOptimal
    return ("optimal" if optimal else "feasible", value, bound)


# -- CBC (child process, limit enforced from outside) -----------------------------------------

class _DeadlinePopen(subprocess.Popen):
    limit: float = 60.0

    def wait(self, timeout=None):
        try:
            return super().wait(timeout=self.limit + 5.0)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGINT)  # CBC stops and writes its best solution
            try:
                return super().wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.kill()
                return super().wait()


def _solve_cbc(model, time_limit, gap, seed, threads, warm_start, node_limit=None):
    from pulp.apis import coin_api

    options = [f"randomSeed {seed + 1}"]
    if node_limit is not None:
        options.append(f"maxNodes {int(node_limit)}")
    engine = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=gap, threads=threads,
                               warmStart=warm_start, options=options)
    _DeadlinePopen.limit = time_limit
    original = coin_api.subprocess.Popen
    coin_api.subprocess.Popen = _DeadlinePopen
    try:
        model.solve(engine)
    except pulp.PulpSolverError:
        return ("no_solution", None, None)
    finally:
        coin_api.subprocess.Popen = original
    status = pulp.LpStatus[model.status]
    if status == "Infeasible":
        return ("infeasible", None, None)
    if model.sol_status not in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        return ("no_solution", None, None)
    value = pulp.value(model.objective)
    optimal = model.sol_status == pulp.LpSolutionOptimal
    # CBC's best bound is not reported through PuLP: an optimal answer is its own bound
    return ("optimal" if optimal else "feasible", value, value if optimal else None)


def solve_lp(cost: np.ndarray, col_lower: np.ndarray, col_upper: np.ndarray,
             row_lower: np.ndarray, row_upper: np.ndarray, start: np.ndarray,
             index: np.ndarray, value: np.ndarray, **options) -> highspy.Highs:
    """Solve a column-wise LP with HiGHS's native arrays (no per-variable modelling cost)."""
    lp = highspy.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = len(row_lower)
    lp.col_cost_ = cost
    lp.col_lower_ = col_lower
    lp.col_upper_ = col_upper
    lp.row_lower_ = row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.asarray(start, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value, dtype=float)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    search = clock.current()
    per_iteration = clock.lp_iteration_seconds(lp.num_row_, len(lp.a_matrix_.value_))
    if search.deterministic and "time_limit" in options:
        # a limit in work (simplex iterations), not in wall seconds; the wall limit is a safety
        limit = options.pop("time_limit")
        options["simplex_iteration_limit"] = max(1000, int(limit / per_iteration))
        options["time_limit"] = clock.SAFETY * limit + 5.0
    for key, val in options.items():
        h.setOptionValue(key, val)
    h.passModel(lp)
    h.run()
    clock.charge(h.getInfo().simplex_iteration_count * per_iteration)
    return h
