"""The UPDATE throttle (SPEC section 4): ``UpdatePump`` on its own, then through JobExecution."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import wait_until

from ess_callback import JobExecution, Status
from ess_callback._updates import UpdatePump
from ess_callback.testing import FakeScheduler, Recorder, record_callbacks


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Deliveries:
    """A deliver() callable that records what it was given, when, and signals each call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.messages: list[str] = []
        self.times: list[float] = []
        self._clock = clock
        self._cond = threading.Condition()

    def __call__(self, message: str) -> None:
        with self._cond:
            self.times.append(self._clock())
            self.messages.append(message)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"only {self.messages} delivered")
            return list(self.messages)


# -- the pump with a hand-moved clock (inline sending, as in dry run and recording) ---------


def test_first_update_is_due_at_once() -> None:
    """The very first offer is sent immediately."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 10.0, background=False, clock=clock)
    pump.offer("first")
    assert sent.messages == ["first"]


def test_at_most_one_post_per_interval() -> None:
    """Offers every second with a 5 s interval give one post per 5 s, each the latest."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 5.0, background=False, clock=clock)
    for i in range(12):
        pump.offer(f"m{i}")
        clock.advance(1.0)
    assert sent.messages == ["m0", "m5", "m10"]
    gaps = [b - a for a, b in itertools.pairwise(sent.times)]
    assert all(gap >= 5.0 for gap in gaps)


def test_latest_message_wins_and_a_due_one_is_sent_at_close() -> None:
    """Of the messages held back, only the latest is sent, at close once it is due."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 5.0, background=False, clock=clock)
    pump.offer("a")
    pump.offer("b")
    pump.offer("c")
    clock.advance(6.0)
    pump.close()
    assert sent.messages == ["a", "c"]


def test_update_held_back_at_close_is_dropped() -> None:
    """A message still inside the throttle window when the pump closes is never sent."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 5.0, background=False, clock=clock)
    pump.offer("a")
    clock.advance(1.0)
    pump.offer("held")
    pump.close()
    assert sent.messages == ["a"]


def test_update_held_back_at_close_stays_dropped_when_closed_again() -> None:
    """Closing a second time, once the window has passed, sends nothing: the held message
    would otherwise follow the terminal status."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 5.0, background=False, clock=clock)
    pump.offer("a")
    clock.advance(1.0)
    pump.offer("held")
    pump.close()
    clock.advance(10.0)
    pump.close()
    assert sent.messages == ["a"]


def test_zero_interval_sends_every_update() -> None:
    """``interval=0`` lets every offer through, in order."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 0, background=False, clock=clock)
    for i in range(5):
        pump.offer(str(i))
    assert sent.messages == ["0", "1", "2", "3", "4"]


def test_zero_interval_sends_repeated_equal_messages_too() -> None:
    """Every offer counts, even one equal to the previous message."""
    sent = Deliveries()
    pump = UpdatePump(sent, 0, background=False)
    for _ in range(3):
        pump.offer("same")
    assert sent.messages == ["same", "same", "same"]


def test_a_message_is_sent_once() -> None:
    """A message already sent is not sent again when nothing new was offered."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 5.0, background=False, clock=clock)
    pump.offer("only")
    clock.advance(60)
    pump.close()
    assert sent.messages == ["only"]


def test_offer_after_close_is_ignored() -> None:
    """Nothing may follow the terminal status: an offer after close sends nothing."""
    sent = Deliveries()
    pump = UpdatePump(sent, 0, background=False)
    pump.close()
    pump.offer("late")
    assert sent.messages == []


# Each script: (seconds since the start, message to offer, or None to close the pump), with
# what the background thread sends for it: a held message goes out when the interval since
# the previous UPDATE has passed (trailing edge), and the next one is due an interval later.
SCRIPTS = [
    pytest.param(
        1.0, [(0.0, "a"), (0.1, "b"), (1.5, "c"), (1.6, None)], ["a", "b"], id="held-then-newer"
    ),
    pytest.param(
        1.0,
        [(0.0, "a"), (0.1, "b"), (1.5, "c"), (2.05, "d"), (2.1, None)],
        ["a", "b", "c"],
        id="trailing-edges-chain",
    ),
    pytest.param(
        1.0,
        [(0.0, "a"), (0.1, "b"), (3.5, "c"), (3.6, None)],
        ["a", "b", "c"],
        id="held-sent-then-idle-then-due",
    ),
    pytest.param(
        1.0, [(0.0, "a"), (0.1, "b"), (0.2, "c"), (1.7, None)], ["a", "c"], id="latest-wins"
    ),
    pytest.param(1.0, [(0.0, "a"), (0.5, "b"), (0.9, None)], ["a"], id="held-at-close-dropped"),
    pytest.param(
        5.0,
        [(float(t), f"m{t}") for t in range(12)] + [(11.5, None)],
        ["m0", "m5", "m10"],
        id="one-per-interval",
    ),
]


@pytest.mark.parametrize(("interval", "script", "expected"), SCRIPTS)
def test_inline_sends_what_the_background_thread_sends(
    interval: float, script: list[tuple[float, str | None]], expected: list[str]
) -> None:
    """Dry run and recording (inline sending) see exactly the UPDATEs that HTTP (the
    background thread) sends: a held message that fell due before the next offer goes
    out first, as if at its due time, and the next one is due an interval after that."""
    clock = FakeClock()
    start = clock.now
    sent = Deliveries(clock)
    pump = UpdatePump(sent, interval, background=False, clock=clock)
    for at, message in script:
        clock.now = start + at
        if message is None:
            pump.close()
        else:
            pump.offer(message)
    assert sent.messages == expected


def test_inline_catch_up_keeps_the_interval_of_the_trailing_edge() -> None:
    """After a held message is sent as if at its due time, the next offer inside that
    interval is held, not sent at once."""
    clock = FakeClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 1.0, background=False, clock=clock)
    pump.offer("a")  # t=0, next due at 1
    clock.advance(0.1)
    pump.offer("b")  # held: goes out at t=1, so the next is due at 2
    clock.advance(1.4)
    pump.offer("c")  # t=1.5: b is sent first; c is inside b's interval, so held
    assert sent.messages == ["a", "b"]
    clock.advance(0.6)
    pump.offer("d")  # t=2.1: c fell due at 2, so it goes first; d is held until 3
    assert sent.messages == ["a", "b", "c"]
    clock.advance(1.0)
    pump.close()  # t=3.1: d is due
    assert sent.messages == ["a", "b", "c", "d"]


class ThreadClock(FakeClock):
    """A hand-moved clock that also counts the readings taken by the pump's thread, so a
    test can tell when the thread has gone back to waiting after a send."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_reads = 0
        self._cond = threading.Condition()

    def __call__(self) -> float:
        if threading.current_thread().name == "ess-callback-updates":
            with self._cond:
                self.thread_reads += 1
                self._cond.notify_all()
        return self.now

    def wait_for_reads(self, count: int, timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.thread_reads >= count, timeout):
                raise TimeoutError(f"the pump thread read the clock {self.thread_reads} times")


# Not the last script: its offers fall exactly on due times, where the thread may send the
# held message or the new one, whichever it sees first.
@pytest.mark.parametrize(("interval", "script", "expected"), SCRIPTS[:-1])
def test_background_thread_sends_the_same_sequence(
    interval: float, script: list[tuple[float, str | None]], expected: list[str]
) -> None:
    """The background thread, on the same hand-moved clock, sends the same UPDATEs.

    The clock is moved to each moment the thread has something to do (an offer that is
    due, or the end of the interval of a held message) and the test waits for that send.
    The script runs 64 times faster (the thread waits real time for what the clock says is
    left, so it looks again soon); the clock arithmetic is the pump's own, so exact."""
    scale = 1 / 64
    clock = ThreadClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, interval * scale, background=True, clock=clock)

    def expect_send(count: int) -> None:
        sent.wait_for(count)
        # Read after the send for the next due time, then again to wait for it: the thread
        # has finished with this send and waits before the test moves the clock on.
        clock.wait_for_reads(clock.thread_reads + 2)

    start, step = clock.now, interval * scale
    count, next_due, held = 0, float("-inf"), False
    try:
        for at, message in script:
            now = start + at * scale
            if held and next_due < now:  # trailing edge: the thread sends when it is due
                clock.now = next_due
                count += 1
                expect_send(count)
                next_due, held = next_due + step, False
            clock.now = now
            if message is None:
                break
            pump.offer(message)
            if now >= next_due:
                count += 1
                expect_send(count)
                next_due, held = now + step, False
            else:
                held = True
    finally:
        pump.close()
    assert sent.messages == expected


@pytest.mark.parametrize("background", [False, True])
def test_offer_never_raises_when_delivery_raises(background: bool) -> None:
    """A deliver() that raises is logged; offer() and close() never raise."""
    called = threading.Event()

    def broken(message: str) -> None:
        called.set()
        raise RuntimeError("scheduler exploded")

    pump = UpdatePump(broken, 0, background=background)
    pump.offer("x")
    assert called.wait(10)
    pump.offer("y")
    pump.close()


# -- the background thread, with the real clock ----------------------------------------------


def test_background_trailing_edge_sends_the_held_message_at_the_interval() -> None:
    """In background mode a held-back message goes out when the interval has passed."""
    sent = Deliveries()
    pump = UpdatePump(sent, 0.3, background=True)
    try:
        pump.offer("a")
        sent.wait_for(1)
        pump.offer("b")
        pump.offer("c")
        assert sent.wait_for(2) == ["a", "c"]
        assert sent.times[1] - sent.times[0] >= 0.3
    finally:
        pump.close()
    assert sent.messages == ["a", "c"]


def test_background_sends_at_most_one_per_interval() -> None:
    """Offered continuously, the background pump posts no two UPDATEs closer than interval."""
    sent = Deliveries()
    pump = UpdatePump(sent, 0.15, background=True)
    deadline = time.monotonic() + 10
    i = 0
    while len(sent.messages) < 4 and time.monotonic() < deadline:
        pump.offer(f"m{i}")
        i += 1
        time.sleep(0.005)  # pacing the offers like a job's loop; nothing is awaited here
    pump.close()
    assert len(sent.messages) >= 4
    gaps = [b - a for a, b in itertools.pairwise(sent.times)]
    assert all(gap >= 0.15 for gap in gaps), gaps
    assert len(sent.messages) < i  # most offers were coalesced


def test_close_while_throttled_returns_promptly() -> None:
    """Closing inside the throttle window wakes the thread instead of waiting it out."""
    sent = Deliveries()
    pump = UpdatePump(sent, 3600.0, background=True)
    pump.offer("a")
    sent.wait_for(1)
    closer = threading.Thread(target=pump.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "close() hung while the throttle held back"


def test_offer_does_not_wait_for_a_slow_delivery() -> None:
    """While a delivery is stuck in the background, offer() from the job returns at once."""
    entered = threading.Event()
    release = threading.Event()
    delivered: list[str] = []

    def slow(message: str) -> None:
        delivered.append(message)
        entered.set()
        release.wait(30)

    pump = UpdatePump(slow, 0, background=True)
    pump.offer("first")
    assert entered.wait(10)
    offering = threading.Thread(target=lambda: [pump.offer(f"more {i}") for i in range(100)])
    offering.start()
    offering.join(10)
    try:
        assert not offering.is_alive(), "offer() blocked behind the slow delivery"
        assert not release.is_set()  # the delivery is still stuck: offer did not wait for it
    finally:
        release.set()
        pump.close()
    assert delivered[0] == "first"
    assert delivered[-1] == "more 99"  # the latest still wins once the sender is free


def test_close_waits_for_the_update_in_flight() -> None:
    """close() returns only after the in-flight UPDATE, so the terminal status comes last."""
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow(message: str) -> None:
        entered.set()
        release.wait(30)
        order.append(message)

    pump = UpdatePump(slow, 0, background=True)
    pump.offer("in flight")
    assert entered.wait(10)
    closer = threading.Thread(target=lambda: (pump.close(), order.append("closed")))
    closer.start()
    assert order == []
    release.set()
    closer.join(10)
    assert order == ["in flight", "closed"]


# -- through JobExecution -----------------------------------------------------------------


def test_recording_sees_only_the_first_update_inside_the_interval(
    ess_callbacks: Recorder,
) -> None:
    """Recording applies the throttle: a held-back update is dropped at the end."""
    with JobExecution(update_interval=60) as job:
        job.update("one")
        job.update("two")
        job.update("three")
    assert ess_callbacks.statuses == [Status.UPDATE, Status.SUCCESS]
    assert ess_callbacks.messages == ["one", None]
    assert job.sent == list(ess_callbacks)


def test_recording_with_zero_interval_sees_every_update(ess_callbacks: Recorder) -> None:
    """``update_interval=0`` records every update, then the terminal status."""
    with JobExecution(update_interval=0) as job:
        for i in range(5):
            job.update(f"step {i}")
    assert ess_callbacks.messages == [*(f"step {i}" for i in range(5)), None]
    assert ess_callbacks.last.status is Status.SUCCESS


def test_update_after_the_block_sends_nothing(ess_callbacks: Recorder) -> None:
    """An update() after the block has ended never follows the terminal status."""
    with JobExecution(update_interval=0) as job:
        pass
    job.update("too late")
    assert ess_callbacks.statuses == [Status.SUCCESS]


@pytest.mark.integration
def test_recording_and_dry_run_see_what_http_sends(
    fake: FakeScheduler, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end, with the real clock: update a, b 0.1 s later, c 1.4 s later, end 0.1 s
    later (interval 1 s) gives UPDATE a, UPDATE b, SUCCESS over HTTP, in recording and in
    dry run alike (b goes at the interval's end; c is still held back when the block ends)."""

    def script(job: JobExecution) -> None:
        job.update("a")
        time.sleep(0.1)  # the job's own pace, not a wait for something
        job.update("b")
        time.sleep(1.4)
        job.update("c")
        time.sleep(0.1)

    with JobExecution(update_interval=1.0, handle_signals=False, **_ids(fake)) as job:
        script(job)
    over_http = [(c.status, c.message) for c in fake.received]
    with record_callbacks() as recorded, JobExecution(update_interval=1.0) as job:
        script(job)
    with JobExecution(update_interval=1.0, dry_run=True) as dry:
        script(dry)
    expected = [(Status.UPDATE, "a"), (Status.UPDATE, "b"), (Status.SUCCESS, None)]
    assert over_http == expected
    assert [(c.status, c.message) for c in recorded] == expected
    assert [(c.status, c.message) for c in dry.sent] == expected
    capsys.readouterr()


def test_update_never_raises_when_the_scheduler_refuses(fake: FakeScheduler) -> None:
    """A refused UPDATE (400) is logged; the job goes on and the terminal status is sent."""
    fake.fail_next(1, 400)
    with JobExecution(update_interval=0, **_ids(fake)) as job:
        job.update("refused")
    assert [c.status for c in fake.received] == [Status.SUCCESS]
    assert job.outcome is not None and job.outcome.delivered


def test_update_does_not_block_on_a_slow_server(fake: FakeScheduler) -> None:
    """update() returns while the server is still holding the UPDATE's answer."""
    fake.delay_next(1, seconds=2.0)
    with JobExecution(update_interval=0, **_ids(fake)) as job:
        job.update("slow")
        # The fake records an accepted callback before it answers; so the UPDATE arriving
        # while nothing is accepted yet means update() returned before the answer.
        wait_until(lambda: any(r.method == "POST" for r in fake.requests))
        assert fake.received == []
    assert [c.status for c in fake.received] == [Status.UPDATE, Status.SUCCESS]


def test_terminal_status_is_the_last_the_server_receives(fake: FakeScheduler) -> None:
    """However the updates are timed, the scheduler sees the terminal status last."""
    fake.delay_next(1, seconds=0.5)
    with JobExecution(update_interval=0, **_ids(fake)) as job:
        for i in range(20):
            job.update(f"step {i}")
        job.warn("2 rows skipped")
    got = fake.wait_for(predicate=lambda cbs: any(c.status is Status.WARNING for c in cbs))
    assert got[-1].status is Status.WARNING
    updates = got[:-1]
    assert updates and all(c.status is Status.UPDATE for c in updates)
    steps = [int(str(c.message).split()[1]) for c in updates]
    assert steps == sorted(set(steps))  # in order, never an older message after a newer
    assert steps[-1] == 19  # the latest was due at the end, so it went before WARNING
    assert job.sent == got


def test_background_trailing_edge_over_http(fake: FakeScheduler) -> None:
    """Over HTTP, the held-back update reaches the server once the interval has passed."""
    with JobExecution(update_interval=0.2, **_ids(fake)) as job:
        job.update("a")
        fake.wait_for(1)
        job.update("b")  # inside the interval: held back, then sent at its end
        fake.wait_for(2)
    assert [(c.status, c.message) for c in fake.received] == [
        (Status.UPDATE, "a"),
        (Status.UPDATE, "b"),
        (Status.SUCCESS, None),
    ]


def _ids(fake: FakeScheduler) -> dict[str, Any]:
    return {"base_url": fake.url, "request_id": 42, "request_handle": "handle-42"}


def test_background_sends_the_message_current_when_the_update_fell_due() -> None:
    """An update due at offer("a") carries "a" even if "b" follows before the thread runs;
    "b" is held and goes at the interval's end, exactly as inline sending does."""
    clock = ThreadClock()
    sent = Deliveries(clock)
    pump = UpdatePump(sent, 1.0, background=True, clock=clock)
    try:
        pump.offer("a")
        pump.offer("b")
        assert sent.wait_for(1) == ["a"]
        clock.advance(1.5)
        pump.offer("b2")  # b was the latest when the next update fell due (at 1 s)
        assert sent.wait_for(2) == ["a", "b"]
    finally:
        pump.close()
    assert sent.messages == ["a", "b"]


@pytest.mark.parametrize("background", [False, True])
def test_next_update_is_due_an_interval_after_the_previous_fell_due(background: bool) -> None:
    """However long a delivery takes, the next update is due an interval after the moment
    the previous one became due, not after the delivery ended."""
    clock = ThreadClock()
    sent = Deliveries(clock)

    def slow(message: str) -> None:
        sent(message)
        clock.advance(0.9)  # the POST takes 0.9 s of the 1 s interval

    pump = UpdatePump(slow, 1.0, background=background, clock=clock)
    try:
        pump.offer("a")  # due at 1000, sent; the clock is at 1000.9 afterwards
        sent.wait_for(1)
        clock.now = 1001.0
        pump.offer("b")  # due at 1001, not at 1001.9
        assert sent.wait_for(2) == ["a", "b"]
    finally:
        pump.close()


@pytest.mark.integration
def test_back_to_back_updates_give_the_same_sequence_everywhere(
    fake: FakeScheduler, capsys: pytest.CaptureFixture[str]
) -> None:
    """update a, b at once, c 1.3 s later, end (interval 1 s): UPDATE a, UPDATE b, SUCCESS
    over HTTP, in recording and in dry run alike."""

    def script(job: JobExecution) -> None:
        job.update("a")
        job.update("b")
        time.sleep(1.3)  # the job's own pace, not a wait for something
        job.update("c")

    with JobExecution(update_interval=1.0, handle_signals=False, **_ids(fake)) as job:
        script(job)
    over_http = [(c.status, c.message) for c in fake.received]
    with record_callbacks() as recorded, JobExecution(update_interval=1.0) as job:
        script(job)
    with JobExecution(update_interval=1.0, dry_run=True) as dry:
        script(dry)
    expected = [(Status.UPDATE, "a"), (Status.UPDATE, "b"), (Status.SUCCESS, None)]
    assert over_http == expected
    assert [(c.status, c.message) for c in recorded] == expected
    assert [(c.status, c.message) for c in dry.sent] == expected
    capsys.readouterr()
