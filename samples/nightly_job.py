"""A nightly extract job reporting to ESS with JobExecution: the API's tutorial in one file.

Run it without a scheduler (nothing is sent; each callback is printed as a JSON line):

    ESS_CALLBACK_DRY_RUN=1 python samples/nightly_job.py

Under ESS, the scheduler passes ESS_REQUEST_ID and ESS_REQUEST_HANDLE to the job, and the
environment carries ESS_BASE_URL and the credentials (ESS_USERNAME + ESS_PASSWORD_FILE,
or ESS_TOKEN_FILE).

Try the other endings: SAMPLE_SKIP=3 gives WARNING, SAMPLE_PERIOD_CLOSED=1 BUSINESS_ERROR,
SAMPLE_CRASH=1 ERROR (and a non-zero exit, since the exception propagates).
"""

from __future__ import annotations

import os
import time

from ess_callback import BusinessError, JobExecution


def extract(rows: int) -> list[dict[str, int]]:
    """Stand-in for the real work: read some rows."""
    if os.environ.get("SAMPLE_CRASH"):
        raise ConnectionError("source database unreachable")
    return [{"id": i} for i in range(rows)]


def main() -> None:
    rows_wanted = int(os.environ.get("SAMPLE_ROWS", "5000"))
    # update_interval: at most one UPDATE every 0.2 s (default 10 s); the latest message wins.
    with JobExecution(update_interval=0.2) as job:
        if os.environ.get("SAMPLE_PERIOD_CLOSED"):
            # A business error will not go away by running again: BUSINESS_ERROR.
            raise BusinessError("accounting period 2026-10 is closed")
        rows = extract(rows_wanted)
        for done, _row in enumerate(rows, start=1):
            if done % 500 == 0:
                job.update(f"loaded {done} of {len(rows)} rows")  # cheap; never blocks
                time.sleep(0.05)
        skipped = int(os.environ.get("SAMPLE_SKIP", "0"))
        if skipped:
            job.warn(f"{skipped} rows skipped (missing cost centre)")  # the end: WARNING
    # After the block: how it ended and whether ESS heard it.
    print(f"ended with {job.outcome.status.value if job.outcome else '?'}")


if __name__ == "__main__":
    main()
