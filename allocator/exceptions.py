"""Every error and warning the engine raises.

Only the CLI turns these into exit codes: input errors exit 2, a scenario that has no feasible plan
(or no plan found in time) exits 3, any other engine error exits 1.
"""

from __future__ import annotations

from typing import Any


class AllocatorError(Exception):
    """Base class of every error raised by the engine."""

    exit_code = 1

    def __reduce__(self):
        # rebuild from the finished message and attributes, not by calling __init__ again: batch
        # jobs send their errors back from worker processes and Dask workers
        return (_restore_error, (type(self), self.args, self.__dict__))


def _restore_error(cls: type, args: tuple, state: dict[str, Any]) -> AllocatorError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class InputError(AllocatorError):
    """Bad input: names the file, and where known the row, column and offending value.

    ``row`` is the 1-based data row as a spreadsheet user counts it (the header is row 1 of a CSV
    file, so the first data row is row 2).
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
        value: Any = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.value = value
        self.detail = message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        if value is not None:
            where.append(f"value {value!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class SpecificationError(AllocatorError):
    """The settings cannot all hold at once; the message gives the numbers that clash."""

    exit_code = 3


class InfeasibleError(AllocatorError):
    """No plan satisfies the scenario; ``diagnosis`` lists which requirement fails and by how much."""

    exit_code = 3

    def __init__(self, message: str, diagnosis: list[str] | None = None) -> None:
        self.diagnosis = diagnosis or []
        text = message if not self.diagnosis else message + "\n" + "\n".join(
            f"  - {line}" for line in self.diagnosis
        )
        super().__init__(text)


class NoSolutionError(AllocatorError):
    """The time limit ran out before any plan was found."""

    exit_code = 3


class PlanCheckError(AllocatorError):
    """A plan violates a requirement; it is never written as a success."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        super().__init__("plan check failed:\n" + "\n".join(f"  - {v}" for v in violations))


class SolverError(AllocatorError):
    """A solver is unavailable or failed in an unexpected way."""


class AllocatorWarning(UserWarning):
    """Base class of the engine's warnings."""


class IslandWarning(AllocatorWarning):
    """Units without a neighbour were joined to their nearest unit (the scenario's island rule)."""


class TargetWarning(AllocatorWarning):
    """The company target is above the expected sales of the plan (quotas are hard to attain)."""
