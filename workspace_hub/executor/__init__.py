"""The one execution layer: smoke runs, validations, training runs, online tests and services.

Everything that runs a user's image goes through an :class:`Executor`, as every workspace goes through
:class:`workspace_hub.spawner.WorkspaceMixin`:

- :mod:`.spec`: what to run, as plain data (a :class:`BatchSpec`, a :class:`ReplicaSpec`);
- :mod:`.base`: what a backend implements, and the one handle per started thing (``wait() -> Outcome``,
  ``logs()``, ``stop()``, ``remove()``, and ``request()`` for replicas);
- :mod:`.outcome`: the one place an engine's end becomes a state and a :class:`Reason`;
- :mod:`.docker` and :mod:`.kubernetes`: the backends, each rendering specs with pure functions.

Only :mod:`.docker` imports docker-py; importing this package does not.
"""

from .base import (AnswerTooLarge, EngineError, EngineUnavailable, Executor, Fleet, FleetState, Handle, HEALTH_ANSWER,
                   MAX_ANSWER, ProbeFailed, ReplicaHandle, Response)
from .outcome import Outcome, Reason, State, decide, output_size, wrote_model
from .spec import KEPT, LABEL_KEY, LABEL_OWNER, LABEL_REVISION, LABEL_RUN, BatchSpec, Mount, ReplicaSpec

__all__ = ["AnswerTooLarge", "BatchSpec", "EngineError", "EngineUnavailable", "Executor", "Fleet", "FleetState", "HEALTH_ANSWER",
           "Handle", "KEPT", "LABEL_KEY", "LABEL_OWNER", "LABEL_REVISION", "LABEL_RUN", "MAX_ANSWER", "Mount", "Outcome",
           "ProbeFailed", "Reason", "ReplicaHandle", "ReplicaSpec", "Response", "State", "decide", "output_size",
           "wrote_model"]
