"""territory-allocator: sales organisation size, territories and quotas by optimisation."""

from allocator.exceptions import AllocatorError, InputError, InfeasibleError, PlanCheckError
from allocator.scenario import Scenario, load_scenario
from allocator.batching import batch

__version__ = "0.1.0"

__all__ = ["AllocatorError", "InfeasibleError", "InputError", "PlanCheckError", "Scenario",
           "__version__", "batch", "load_scenario"]
