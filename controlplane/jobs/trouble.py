"""How a monitor's trouble began, carried on its state from the change that began it to
the success that ends it (pure).

`etl.job.failure` labels its alert with that first bad outcome and its run's trace: the
labels are the alert's identity, so they must not move while the monitor stays in
trouble (a failed retry, a slot missed after a failure, an older run timing out late),
or the alert would resolve and page again for the same trouble.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.jobs.models import JobMonitorState, JobRun

Status = JobMonitorState.Status
BAD_OUTCOMES = frozenset(
    {
        JobRun.Outcome.FAILURE,
        JobRun.Outcome.TIMEOUT,
        JobRun.Outcome.TOO_FAST,
        JobRun.Outcome.MISSED,
    }
)


def follow(state: JobMonitorState, changes: Mapping[str, Any], trace_id: str) -> dict[str, str]:
    """The changes to the trouble fields that go with `changes` to `state`, made by a
    run (or a check) whose trace is `trace_id`."""
    outcome = changes.get("last_outcome", state.last_outcome)
    status = changes.get("status", state.status)
    troubled = outcome in BAD_OUTCOMES or status in (Status.FAILED, Status.LATE)
    if not troubled:
        if state.trouble_outcome or state.trouble_trace_id:
            return {"trouble_outcome": "", "trouble_trace_id": ""}
        return {}
    if state.trouble_outcome:
        return {}  # it began earlier: keep how
    began = (
        outcome
        if outcome in BAD_OUTCOMES
        else (JobRun.Outcome.MISSED if status == Status.LATE else JobRun.Outcome.FAILURE)
    )
    return {"trouble_outcome": began, "trouble_trace_id": trace_id}
