"""Configuration of the delivery workers (`delivery:` section of pfi.yaml).

How often and how patiently PFI retries a destination that does not answer: exponential
backoff with jitter between attempts, a dead letter after `max_attempts`, and a circuit
breaker per destination so that an outage of the DMP is not hammered by every row.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from pfi.config.base import Section

Seconds = Annotated[float, Field(gt=0, le=86400)]


class DeliverySettings(Section):
    """Retries, backoff, circuit breaker and parallelism of the delivery stages.

    Network timeouts are the destination's own (`dmp.connect_timeout_s`, `read_timeout_s`,
    ...): a call that times out is a transient failure like any other.
    """

    max_attempts: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=12, description="attempts (calls to the destination) before the dead letter"
    )
    backoff_base_s: Seconds = Field(default=5.0, description="delay before the 2nd attempt")
    backoff_max_s: Seconds = Field(default=3600.0, description="longest delay between attempts")
    backoff_jitter: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.2, description="± fraction of the delay drawn at random (spreads retries)"
    )
    breaker_failures: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=5, description="consecutive transient failures that open a destination's breaker"
    )
    breaker_cooldown_s: Seconds = Field(
        default=30.0, description="how long an open breaker stops calling before one trial call"
    )
    retry_poll_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=1.0, description="how often due failed deliveries are queued again"
    )
    stale_after_s: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=900.0,
        description="a pending or sending row untouched this long has its request queued "
        "again (a request lost, a worker that died mid-call); 0: never",
    )
    concurrency: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4, description="patients sent in parallel per destination topic"
    )
    max_batch: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=50, description="delivery requests taken per poll (bounds one poll's I/O)"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> DeliverySettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")
        return self
