"""An asyncio job reporting to ESS with ``@job``: regional prices fetched concurrently.

* ``main`` is an ``async def`` decorated with ``@job``: each call is one execution, reported
  when it ends, and the decorator hands it the ``JobExecution`` as ``job``.
* The final status is sent from a thread of its own, so the event loop never waits on the
  scheduler, even through a minute of retries; ``job.update()`` never blocks either.
* SIGTERM (ESS's operator, systemd, Kubernetes) cancels the task: the fetches in flight see
  ``CancelledError`` and clean up, CANCEL is posted, and the process exits 143.
* ``test_async_job.py``, next to this file, tests its endings with the ``ess_callbacks``
  fixture.

Try it without a scheduler (each callback is printed as a JSON line on stderr):

    ESS_CALLBACK_DRY_RUN=1 python samples/async_job.py

SAMPLE_FAIL=west gives WARNING (one region failed), SAMPLE_PERIOD_CLOSED=1 BUSINESS_ERROR;
SAMPLE_SLOW=60 makes the fetches take a minute: press Ctrl-C, and the end is CANCEL.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from ess_callback import BusinessError, JobExecution, job

REGIONS = ("north", "south", "east", "west")


class FetchFailed(Exception):
    """One region's source did not answer."""


async def fetch_prices(region: str, *, slow: float = 0.0, fail: Sequence[str] = ()) -> int:
    """Stand-in for the real I/O (an HTTP call with aiohttp or httpx, a query with asyncpg):
    the number of prices read for *region*."""
    await asyncio.sleep(slow or 0.01)
    if region in fail:
        raise FetchFailed(f"{region}: the price service answered 503")
    return 100 + len(region)


@job(update_interval=1)
async def main(
    regions: Sequence[str] = REGIONS,
    *,
    job: JobExecution,
    period_closed: bool = False,
    slow: float = 0.0,
    fail: Sequence[str] = (),
) -> int:
    """Fetch every region's prices at once; a failed region is a warning, a closed period a
    business error. Returns how many prices were read."""
    if period_closed:
        raise BusinessError("accounting period 2026-10 is closed")
    print(f"fetching {len(regions)} regions", flush=True)
    fetches = [fetch_prices(region, slow=slow, fail=fail) for region in regions]
    total = 0
    for done, result in enumerate(await asyncio.gather(*fetches, return_exceptions=True), start=1):
        if isinstance(result, FetchFailed):
            job.warn(str(result))  # the end becomes WARNING
        elif isinstance(result, BaseException):
            raise result
        else:
            total += result
        job.update(f"{done} of {len(regions)} regions fetched")  # never blocks the loop
    return total


if __name__ == "__main__":
    read = asyncio.run(
        main(
            period_closed=bool(os.environ.get("SAMPLE_PERIOD_CLOSED")),
            slow=float(os.environ.get("SAMPLE_SLOW", "0")),
            fail=tuple(filter(None, os.environ.get("SAMPLE_FAIL", "").split(","))),
        )
    )
    print(f"read {read} prices" if read is not None else "ended without a result")
