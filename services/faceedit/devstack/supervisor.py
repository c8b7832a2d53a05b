"""Keeps a local stack's children running as Kubernetes keeps pods running: a child that dies is restarted with
backoff while the others keep serving (the orchestrator's round_robin routes around a dead replica meanwhile),
and supervision gives up, naming the child and why, only when one child fails `limit` times within `window_s`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from faceedit.devstack.process import ChildProcess, ChildStartError


@dataclass(frozen=True)
class RestartPolicy:
    limit: int = 3  # failures of one child within window_s that end supervision
    window_s: float = 60.0
    backoff_s: float = 1.0  # the first restart's delay; doubled for each further failure within the window
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0 or self.backoff_s < 0:
            raise ValueError(f"restart limit must be >= 1, window > 0 and backoff >= 0, got {self}")

    def delay(self, failures: list[float], now: float) -> float | None:
        """Seconds to wait before the next restart, given the times of a child's failures (the latest at now);
        None once `limit` of them fall within the window: give up."""
        recent = [t for t in failures if now - t <= self.window_s]
        if len(recent) >= self.limit:
            return None
        return min(self.backoff_s * 2 ** (len(recent) - 1), self.max_backoff_s)


@dataclass
class GaveUp:
    name: str
    reason: str
    failures: int


@dataclass
class _State:
    phase: str = "up"  # up | waiting (dead, restart at `at`) | starting (spawned again, ready by `at`)
    at: float = 0.0
    failures: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        children: Mapping[str, ChildProcess],
        policy: RestartPolicy,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = dict(children)
        self.policy = policy
        self.log = log
        self.clock = clock
        self.states = {name: _State() for name in self.children}

    def _failed(self, name: str, reason: str) -> GaveUp | None:
        state, now = self.states[name], self.clock()
        state.failures.append(now)
        delay = self.policy.delay(state.failures, now)
        recent = sum(now - t <= self.policy.window_s for t in state.failures)
        if delay is None:
            return GaveUp(name, reason, recent)
        state.phase, state.at = "waiting", now + delay
        self.log(
            f"faceedit up: {name} {reason}; restarting in {delay:.0f}s "
            f"(failure {recent} of {self.policy.limit} allowed within {self.policy.window_s:.0f}s)"
        )
        return None

    def poll(self) -> GaveUp | None:
        """One pass over the children: notice deaths, restart those whose backoff is over, follow restarts until
        ready. A GaveUp once a child has failed too often."""
        for name, child in self.children.items():
            state = self.states[name]
            if state.phase == "up" and child.exit_code() is not None:
                gave_up = self._failed(name, child.exit_reason())
            elif state.phase == "waiting" and self.clock() >= state.at:
                child.restart()
                state.phase, state.at = "starting", self.clock() + child.ready_timeout_s
                gave_up = None
            elif state.phase == "starting":
                gave_up = self._follow_restart(name, child, state)
            else:
                gave_up = None
            if gave_up is not None:
                return gave_up
        return None

    def _follow_restart(self, name: str, child: ChildProcess, state: _State) -> GaveUp | None:
        try:
            ready = child.check_ready()
        except ChildStartError:
            return self._failed(name, child.exit_reason())
        if ready:
            state.phase = "up"
            self.log(f"faceedit up: {name} restarted and ready again (pid {child.process.pid})")
        elif self.clock() > state.at:
            child.kill()
            return self._failed(name, f"did not {child.awaited} within {child.ready_timeout_s:.0f}s of a restart")
        return None

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> GaveUp | None:
        """Until stop is set (None) or a child fails too often (its GaveUp)."""
        while not stop.wait(interval_s):
            gave_up = self.poll()
            if gave_up is not None:
                return gave_up
        return None
