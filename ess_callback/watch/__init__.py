"""Waiting on other jobs: status readers for four APIs and ``wait()`` (SPEC section 9).

>>> from ess_callback.watch import SaasBatchReader, wait
>>> reader = SaasBatchReader("https://fa.example.com", token)
>>> final = wait(reader, "44046", timeout=3600, poll=10)
>>> final.state, final.message
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
