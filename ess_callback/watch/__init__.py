"""Waiting on other jobs: status readers for four APIs and ``wait()`` (docs/howto/wait.md).

>>> from ess_callback.testing import FakeScheduler
>>> from ess_callback.watch import SaasBatchReader, wait
>>> with FakeScheduler() as fusion:             # a stand-in for Fusion's Job Scheduler
...     fusion.add_watched("saas-batch", "44046", [("RUNNING", 50, None), ("SUCCEEDED", 100, None)])
...     reader = SaasBatchReader(fusion.url, "a-token")
...     final = wait(reader, "44046", timeout=3600, poll=0.01)
>>> final.state
<JobState.SUCCEEDED: 'SUCCEEDED'>
"""

from ._http import HostNotFoundError
from ._readers import EssReader, HuaweiReader, PaasReader, SaasBatchReader
from ._state import JobState, JobStatus, MalformedAnswerError, WaitTimeout, ess_state
from ._wait import wait

__all__ = [
    "EssReader",
    "HostNotFoundError",
    "HuaweiReader",
    "JobState",
    "JobStatus",
    "MalformedAnswerError",
    "PaasReader",
    "SaasBatchReader",
    "WaitTimeout",
    "ess_state",
    "wait",
]
