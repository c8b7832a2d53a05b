"""Admission: start within the maximum queue wait, finish within the deadline, judged from measured speed."""

from __future__ import annotations

import pytest

from faceedit.inpainter.admission import Queue, ServiceTimeModel


def test_the_model_learns_step_time_per_megapixel_and_the_fixed_part() -> None:
    model = ServiceTimeModel(step_s_per_mpx=1.0, fixed_s=1.0, weight=1.0)  # weight 1: the last job only
    model.observe(steps=10, canvas=1000, total_s=3.5, step_s=0.3)  # 1 MP canvas: 0.3 s a step, 0.5 s fixed
    assert model.step_s_per_mpx == pytest.approx(0.3) and model.fixed_s == pytest.approx(0.5)
    assert model.estimate(20, 1000) == pytest.approx(6.5)
    assert model.estimate(20, 500) == pytest.approx(0.5 + 20 * 0.3 / 4)  # a quarter of the pixels per step
    model.observe(steps=1, canvas=1000, total_s=0.8, step_s=None)  # one step: no interval to measure
    assert model.step_s_per_mpx == pytest.approx(0.8) and model.fixed_s == pytest.approx(0.0)


def test_the_average_follows_the_device_gradually() -> None:
    model = ServiceTimeModel(step_s_per_mpx=1.0, fixed_s=0.0, weight=0.5)
    model.observe(steps=2, canvas=1000, total_s=6.0, step_s=3.0)
    assert model.step_s_per_mpx == pytest.approx(2.0)  # halfway from 1 to 3


def _queue(**kwargs) -> Queue:
    fields = dict(capacity=8, max_wait_s=10.0, model=ServiceTimeModel())
    fields.update(kwargs)
    return Queue(**fields)


def test_admits_while_the_estimated_wait_fits_and_refuses_with_a_retry_hint_beyond() -> None:
    queue = _queue()
    for key in range(3):
        assert queue.admit(key, 4.0, None, now=0.0) is None
    assert queue.estimated_wait(now=0.0) == pytest.approx(12.0)
    refusal = queue.admit(9, 4.0, None, now=0.0)
    assert refusal is not None and refusal.overload
    assert "estimated queue wait is 12.0 s, above its maximum of 10 s" in refusal.message
    assert refusal.retry_after_ms == 4000  # at least one job's time
    queue.start(0, now=0.0)
    assert queue.estimated_wait(now=3.0) == pytest.approx(1.0 + 8.0)  # 1 s left of the running job
    assert queue.admit(9, 4.0, None, now=3.0) is None
    queue.finish()
    queue.forget(1)
    assert set(queue.waiting) == {2, 9}


def test_the_count_bound_still_holds() -> None:
    queue = _queue(capacity=1, max_wait_s=1e9)
    assert queue.admit(0, 1.0, None, now=0.0) is None
    assert queue.admit(1, 1.0, None, now=0.0) is None  # one running (or about to) and one waiting
    refusal = queue.admit(2, 1.0, None, now=0.0)
    assert refusal is not None and refusal.overload and "queue is full (2 requests waiting)" in refusal.message


def test_a_deadline_shorter_than_the_job_itself_is_not_overload() -> None:
    queue = _queue()
    refusal = queue.admit(0, 5.0, deadline=3.0, now=0.0)
    assert refusal is not None and not refusal.overload
    assert "needs about 5.0 s of inpainting but its deadline leaves 3.0 s" in refusal.message
    assert not queue.waiting  # nothing admitted


def test_a_deadline_the_queue_would_outlast_is_overload_with_the_time_to_wait() -> None:
    queue = _queue()
    assert queue.admit(0, 4.0, None, now=0.0) is None
    refusal = queue.admit(1, 4.0, deadline=6.0, now=0.0)
    assert refusal is not None and refusal.overload and refusal.retry_after_ms == 2000  # 4 + 4 - 6
    assert queue.admit(2, 4.0, deadline=8.5, now=0.0) is None
