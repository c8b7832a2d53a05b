"""Whether the inpainter takes a request: it must be able to start within the maximum queue wait and finish within
the caller's deadline, judged from the pipeline's measured speed. Pure bookkeeping; the engine calls it under its
lock.

A refusal at the door costs the caller nothing and the GPU nothing; a request admitted into a queue it cannot
get through in time costs both (the measured failure mode: 95% refused by count, the admitted 5% waiting 20 s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ServiceTimeModel:
    """Seconds a job takes: fixed_s (text encoders, VAE, framing) plus steps x the time of one denoising step,
    which scales with the canvas area (a UNet pass is linear in its pixels). Both parts follow the measured jobs
    as exponentially weighted averages, so the estimate tracks the real device."""

    step_s_per_mpx: float = 0.05
    fixed_s: float = 0.1
    weight: float = 0.3

    def estimate(self, steps: int, canvas: int) -> float:
        return self.fixed_s + steps * self.step_s_per_mpx * canvas * canvas / 1e6

    def observe(self, steps: int, canvas: int, total_s: float, step_s: float | None) -> None:
        """A finished job: its steps, canvas, total seconds, and the seconds of one step when at least two ran."""
        mpx = canvas * canvas / 1e6
        per_step = step_s if step_s is not None else total_s / max(1, steps)
        fixed = max(0.0, total_s - steps * per_step)
        self.step_s_per_mpx += self.weight * (per_step / mpx - self.step_s_per_mpx)
        self.fixed_s += self.weight * (fixed - self.fixed_s)


@dataclass(frozen=True)
class Refusal:
    """Why a request is not admitted. overload: RESOURCE_EXHAUSTED with retry_after_ms; otherwise the deadline
    is shorter than the job itself (DEADLINE_EXCEEDED)."""

    overload: bool
    message: str
    retry_after_ms: int = 0


@dataclass
class Queue:
    """The admitted jobs: one running (its start and estimate) and the waiting ones (their estimates)."""

    capacity: int
    max_wait_s: float
    model: ServiceTimeModel = field(default_factory=ServiceTimeModel)
    running: tuple[float, float] | None = None
    waiting: dict[int, float] = field(default_factory=dict)

    def estimated_wait(self, now: float | None = None) -> float:
        """Seconds until a job admitted now would start."""
        now = time.monotonic() if now is None else now
        left = 0.0 if self.running is None else max(0.0, self.running[0] + self.running[1] - now)
        return left + sum(self.waiting.values())

    def admit(self, key: int, cost_s: float, deadline: float | None, now: float | None = None) -> Refusal | None:
        """Admit job `key` of estimated cost, or say why not. deadline is absolute (time.monotonic)."""
        now = time.monotonic() if now is None else now
        if len(self.waiting) + (self.running is not None) > self.capacity:
            wait = self.estimated_wait(now)
            return Refusal(
                True,
                f"inpainter queue is full ({len(self.waiting)} requests waiting); retry in about "
                f"{_ms(wait)} ms or add inpainter replicas",
                _ms(max(cost_s, wait)),
            )
        wait = self.estimated_wait(now)
        if wait > self.max_wait_s:
            return Refusal(
                True,
                f"the inpainter's estimated queue wait is {wait:.1f} s, above its maximum of {self.max_wait_s:g} s; "
                "retry later or add inpainter replicas",
                _ms(max(cost_s, wait - self.max_wait_s)),
            )
        if deadline is not None:
            left = deadline - now
            if cost_s > left:
                return Refusal(
                    False,
                    f"this request needs about {cost_s:.1f} s of inpainting but its deadline leaves {left:.1f} s; "
                    "allow more time or ask for fewer steps",
                )
            if wait + cost_s > left:
                return Refusal(
                    True,
                    f"the inpainter's queue ({wait:.1f} s) plus this request ({cost_s:.1f} s) would outlast its "
                    f"deadline ({left:.1f} s left); retry later or add inpainter replicas",
                    _ms(wait + cost_s - left),
                )
        self.waiting[key] = cost_s
        return None

    def start(self, key: int, now: float | None = None) -> None:
        cost = self.waiting.pop(key, 0.0)
        self.running = (time.monotonic() if now is None else now, cost)

    def finish(self) -> None:
        self.running = None

    def forget(self, key: int) -> None:
        """A waiting job that will not run (cancelled or expired before its turn)."""
        self.waiting.pop(key, None)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
