"""The interrupt window: nesting, stages, the second signal and held blocks, with real signals sent to this process."""

from __future__ import annotations

import os
import signal

import pytest

from gradfit.train.interrupt import Interrupted, catch_interrupts, current_request, request_stop

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")


class Fallback(BaseException):
    """What the handlers in place before a window raise: a window that fails to catch a signal fails the test
    with this, instead of killing the test process (SIGTERM) or looking like a KeyboardInterrupt."""


@pytest.fixture(autouse=True)
def fallback_handlers():
    def fallback(signum, frame):
        raise Fallback(signal.Signals(signum).name)

    before = {s: signal.signal(s, fallback) for s in (signal.SIGINT, signal.SIGTERM)}
    yield fallback
    for s, handler in before.items():
        signal.signal(s, handler)


def send(signum=signal.SIGINT) -> None:
    """Signal this process; the handler runs before the next line (same thread, next bytecode)."""
    os.kill(os.getpid(), signum)


def test_a_window_opened_inside_another_joins_it(fallback_handlers):
    with catch_interrupts(second="raise") as outer:
        handler = signal.getsignal(signal.SIGINT)
        with catch_interrupts() as inner:
            assert inner is outer and current_request() is outer
            assert signal.getsignal(signal.SIGINT) is handler  # nothing installed over the outer window's
            send()
        assert signal.getsignal(signal.SIGINT) is handler  # and nothing taken away on leaving
        assert outer and outer.reason == "SIGINT"
        assert request_stop() and current_request() is outer
    assert signal.getsignal(signal.SIGINT) is fallback_handlers and current_request() is None


def test_a_window_without_signals_inside_another_keeps_its_own_request():
    with catch_interrupts() as outer, catch_interrupts(enabled=False) as inner:
        assert inner is not outer


def test_a_kept_stage_only_sets_the_request_and_remembers_it():
    with catch_interrupts() as stop:
        with stop.stage("fitting"):
            send(signal.SIGTERM)
            assert stop and stop.reason == "SIGTERM" and stop.during == "fitting"
        assert stop.current is None


def test_a_droppable_stage_is_cut_short_at_once():
    with catch_interrupts() as stop:
        with pytest.raises(Interrupted) as caught:
            with stop.stage("drawing", droppable=True):
                send()
                pytest.fail("the droppable work went on after the signal")
    assert (caught.value.name, caught.value.during, caught.value.second) == ("SIGINT", "drawing", False)
    assert isinstance(caught.value, KeyboardInterrupt) and not isinstance(caught.value, Exception)
    assert stop.during == "drawing"


def test_a_droppable_stage_is_not_started_after_a_request():
    with catch_interrupts() as stop:
        send()
        with pytest.raises(Interrupted, match="SIGINT during analysing"):
            with stop.stage("analysing", droppable=True):
                pytest.fail("started work that would be thrown away")


def test_now_sets_the_stage_until_the_next_and_a_block_inside_comes_back_to_it():
    with catch_interrupts() as stop:
        stop.now("reading", droppable=True)
        with pytest.raises(Interrupted, match="during reading"):
            send()
        stop.now("fitting")  # the request is set: a kept stage does not raise
        with stop.stage("drawing"):
            assert stop.current == "drawing"
        assert (stop.current, stop.droppable) == ("fitting", False)
        with pytest.raises(Interrupted, match="during drawing"):
            stop.now("drawing", droppable=True)  # work that would be thrown away is not started


def test_the_library_window_hands_a_second_signal_to_the_previous_handler():
    with catch_interrupts() as stop:
        send()
        with pytest.raises(Fallback, match="SIGINT"):
            send()
    assert stop.signals == 1


def test_the_commands_window_raises_on_a_second_signal_even_sigterm_and_a_third_acts_as_before():
    with catch_interrupts(second="raise") as stop:
        with stop.stage("saving the run"):
            send(signal.SIGTERM)
            with pytest.raises(Interrupted) as caught:
                send(signal.SIGTERM)
                pytest.fail("the second signal did not stop the work")
            assert (caught.value.name, caught.value.during, caught.value.second) == ("SIGTERM", "saving the run", True)
            with pytest.raises(Fallback, match="SIGINT"):
                send(signal.SIGINT)


def test_a_held_block_finishes_and_the_signal_is_raised_after_it():
    done = []
    with catch_interrupts(second="raise") as stop:
        send()  # the first: a request
        with pytest.raises(Interrupted) as caught:
            with stop.held():
                send()  # the second, inside: waits
                done.append("replaced")
    assert done == ["replaced"] and caught.value.second


def test_a_held_block_inside_a_droppable_stage_is_finished_first():
    done = []
    with catch_interrupts() as stop:
        with pytest.raises(Interrupted, match="drawing"):
            with stop.stage("drawing", droppable=True), stop.held():
                send()
                done.append("whole")
    assert done == ["whole"]


def test_handlers_come_back_when_the_block_raises(fallback_handlers):
    with pytest.raises(RuntimeError):
        with catch_interrupts(second="raise"):
            raise RuntimeError("boom")
    assert signal.getsignal(signal.SIGINT) is fallback_handlers is signal.getsignal(signal.SIGTERM)
