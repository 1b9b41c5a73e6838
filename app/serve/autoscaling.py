"""Ray Serve's autoscaling policy for the transcription deployment: enough replicas that the
speech windows waiting for a batch stay near RAY_TARGET_QUEUED_WINDOWS per replica.

Requests in flight are a poor measure here: one request may be a 10 s clip or a 3 h
recording, and a replica's window scheduler turns either into windows; the windows waiting
for the engine are what a new replica would take off the others. Each replica reports its
count (Transcription.record_autoscaling_stats); Serve averages it over its look-back window.
"""

from __future__ import annotations

import math
from typing import Any


class QueuedWindowsPolicy:
    def __init__(self, target: float = 64.0) -> None:
        self.target = target

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        per_replica = ctx.aggregated_metrics.get("queued_windows", {})
        queued = sum(per_replica.values())
        # Idle: one fewer each decision (never below the minimum, clamped below).
        wanted = math.ceil(queued / self.target) if queued else ctx.current_num_replicas - 1
        low, high = ctx.capacity_adjusted_min_replicas, ctx.capacity_adjusted_max_replicas
        return max(low, min(high, wanted)), ctx.policy_state
