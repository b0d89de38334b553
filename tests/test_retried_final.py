"""A final status sent more than once and then refused (SPEC section 5, second paragraph),
end to end against the FakeScheduler with ``repeat_final="reject"``: the client reads the
request's state and counts the status delivered when the request already stands where the
status leads; otherwise the refusal stands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import cli_runner

from ess_callback import (
    BearerAuth,
    Callback,
    InvalidInputError,
    JobExecution,
    SchedulerClient,
    SchedulerUnavailableError,
    Status,
)
from ess_callback._client import RetryPolicy
from ess_callback.cli import main
from ess_callback.outbox import _outbox
from ess_callback.testing import FakeScheduler

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=4, budget=10, timeout=5, backoff=0.01)


@pytest.fixture
def strict() -> Iterator[FakeScheduler]:
    """A fake that refuses a repeated final status (the strict reading of ESS)."""
    with FakeScheduler(repeat_final="reject") as fake:
        fake.submit(42, "handle-42")
        yield fake


def calls(fake: FakeScheduler) -> list[tuple[str, int | None]]:
    return [(r.method, r.answer) for r in fake.requests]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (Status.SUCCESS, "SUCCEEDED"),
        (Status.WARNING, "WARNING"),
        (Status.ERROR, "ERROR"),
        (Status.BUSINESS_ERROR, "ERROR"),
        (Status.CANCEL, "CANCELLED"),
    ],
)
def test_lost_answer_then_400_counts_as_delivered_when_the_state_shows_it(
    strict: FakeScheduler, status: Status, state: str
) -> None:
    """The fake takes the status but the answer is lost (connection reset); the retry is
    refused 400; the state read shows the status arrived: delivered, once."""
    strict.reset_after_accept(1)
    with SchedulerClient(strict.url, retry=FAST) as client:
        outcome = client.post_status(42, "handle-42", status, "what happened")
    assert outcome.delivered and outcome.attempts == 2
    assert strict.state(42) == state
    assert [c.status for c in strict.received] == [status]
    assert calls(strict) == [("POST", None), ("POST", 400), ("GET", 200)]


def test_the_refusal_stands_when_the_request_stands_elsewhere(strict: FakeScheduler) -> None:
    """The first attempt never arrived, and the retry is refused because an operator
    ended the request: the state read shows another end, so the 400 stands."""
    strict.set_state(42, "CANCELLED")
    strict.reset_next(1, method="POST")
    with SchedulerClient(strict.url, retry=FAST) as client, pytest.raises(InvalidInputError):
        client.post_status(42, "handle-42", Status.SUCCESS)
    assert calls(strict) == [("POST", None), ("POST", 400), ("GET", 200)]


def test_a_first_attempt_refused_is_never_second_guessed(strict: FakeScheduler) -> None:
    """A 400 to a status sent once is the scheduler's answer: no state read, it stands."""
    strict.set_state(42, "SUCCEEDED")
    with SchedulerClient(strict.url, retry=FAST) as client, pytest.raises(InvalidInputError):
        client.post_status(42, "handle-42", Status.SUCCESS)
    assert calls(strict) == [("POST", 400)]


def test_the_refusal_stands_when_the_state_cannot_be_read(strict: FakeScheduler) -> None:
    """If the state read fails, nothing says the status arrived: the 400 stands."""
    strict.reset_after_accept(1)
    strict.fail_next(1, 500, method="GET")
    with SchedulerClient(strict.url, retry=FAST) as client, pytest.raises(InvalidInputError):
        client.post_status(42, "handle-42", Status.SUCCESS)
    assert calls(strict) == [("POST", None), ("POST", 400), ("GET", 500)]


def test_an_update_is_never_checked(strict: FakeScheduler) -> None:
    """UPDATE is not final: a refusal after a lost answer is not looked into."""
    strict.set_state(42, "SUCCEEDED")
    strict.reset_next(1, method="POST")
    with SchedulerClient(strict.url, retry=FAST) as client, pytest.raises(InvalidInputError):
        client.post_status(42, "handle-42", Status.UPDATE)
    assert calls(strict) == [("POST", None), ("POST", 400)]


@pytest.mark.parametrize("auth", [("alice", "s3cret"), BearerAuth("tok-1")])
def test_the_state_is_read_with_the_same_credentials(auth: object) -> None:
    """The state read carries the client's own credentials (Basic or bearer)."""
    kwargs = {"username": "alice", "password": "s3cret"} if isinstance(auth, tuple) else {}
    token = None if isinstance(auth, tuple) else "tok-1"
    with FakeScheduler(**kwargs, token=token) as fake:  # type: ignore[arg-type]
        fake.submit(42, "handle-42")
        fake.reset_after_accept(1)
        with SchedulerClient(fake.url, auth=auth, retry=FAST) as client:  # type: ignore[arg-type]
            assert client.post_status(42, "handle-42", Status.ERROR, "boom").delivered
        posted, _refused, read = fake.requests
        assert read.method == "GET" and read.answer == 200
        assert read.headers["Authorization"] == posted.headers["Authorization"]


def test_job_execution_ends_delivered_through_a_lost_answer(
    strict: FakeScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job whose SUCCESS answer is lost ends delivered, with nothing left in the outbox."""
    for key, value in strict.env(42, "handle-42").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ESS_CALLBACK_RETRY_SECONDS", "10")
    strict.reset_after_accept(1)
    with JobExecution(update_interval=0) as job:
        pass
    assert job.outcome.delivered and job.outcome.status is Status.SUCCESS
    assert job.outcome.spooled_to is None
    assert strict.state(42) == "SUCCEEDED"
    assert [c.status for c in strict.received] == [Status.SUCCESS]


def test_a_status_the_fake_never_took_still_goes_unanswered(strict: FakeScheduler) -> None:
    """Without any refusal the client's usual retries still apply (nothing is read)."""
    strict.reset_next(4, method="POST")
    with (
        SchedulerClient(strict.url, retry=FAST) as client,
        pytest.raises(SchedulerUnavailableError),
    ):
        client.post_status(42, "handle-42", Status.SUCCESS)
    assert all(method == "POST" for method, _ in calls(strict))


def test_flush_of_a_status_that_arrived_before_counts_it_delivered(
    strict: FakeScheduler, tmp_path: Path
) -> None:
    """A status in the outbox whose earlier send went unanswered but did arrive: the flush's
    POST is refused (400), the state shows it arrived, so the file is delivered and gone,
    not moved to rejected/."""
    box = tmp_path / "outbox"
    strict.reset_after_accept(1)
    with (
        SchedulerClient(strict.url, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(SchedulerUnavailableError) as lost,
    ):
        client.post_status(42, "handle-42", Status.WARNING, "3 rows skipped")
    assert strict.state(42) == "WARNING"
    path = _outbox.spool(
        box,
        Callback(42, "handle-42", Status.WARNING, "3 rows skipped"),
        base_url=strict.url,
        attempts=1,
        error=lost.value,
    )
    result = cli_runner().invoke(main, ["flush"], env={"ESS_CALLBACK_OUTBOX": str(box)})
    assert result.exit_code == 0, result.output
    assert "delivered 1, rejected 0, pending 0" in result.stdout
    assert not path.exists() and not (box / "rejected").exists()
    assert calls(strict)[-2:] == [("POST", 400), ("GET", 200)]
