"""What ``ess-callback wait`` does, below the click layer: build the reader from options and
environment, wait with a progress display, relay if asked, and choose the exit status.

Exit 0 the watched job succeeded, 1 it failed, was cancelled or does not exist, 75 the wait
timed out, the API stayed unreachable or answered something unreadable, 2 usage or
configuration (raised as ``ConfigurationError`` before any network) or the watched API
refused the request (401, 403: the credentials), 128+N when interrupted by signal N.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TextIO

import attrs
import click

from .._errors import ConfigurationError, EssCallbackError, RejectedError, RequestNotFoundError
from .._posix import CANCEL_SIGNALS
from .._sender import undelivered_text
from .._settings import (
    BasicAuth,
    BearerAuth,
    auth_from_env,
    check_ca_bundle,
    is_loopback,
    parse_bool,
    resolve_settings,
    without_option_hints,
)
from .._status import Status
from .._url import split_url
from ._http import HttpReader
from ._readers import EssReader, HuaweiReader, PaasReader, SaasBatchReader
from ._relay import Relay, failure_text, final_status
from ._state import JobState, JobStatus
from ._wait import wait

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

log = logging.getLogger("ess_callback")

APIS = ("ess", "saas-batch", "paas", "huawei")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TEMPFAIL = 0, 1, 2, 75
HANDLED_SIGNALS = CANCEL_SIGNALS
WATCH_HINT = (
    "set WATCH_USERNAME and WATCH_PASSWORD (or WATCH_PASSWORD_FILE), "
    "or WATCH_TOKEN (or WATCH_TOKEN_FILE), for the watched API"
)


@attrs.frozen
class WaitOptions:
    """The command's arguments, as given (``timeout`` None: no limit)."""

    api: str
    job_id: str
    base_url: str | None = None
    identity_domain: str | None = None
    project_id: str | None = None
    timeout: float | None = 86400.0
    poll: float = 10.0
    relay: bool = False
    update_interval: float = 10.0

    @property
    def what(self) -> str:
        """``saas-batch job 44046``: the watched job, as messages name it."""
        return f"{self.api} job {self.job_id}"


def _secrets(auth: BasicAuth | BearerAuth | None) -> list[str]:
    if isinstance(auth, BasicAuth):
        return [auth.password]
    if isinstance(auth, BearerAuth):
        return [auth.token]
    return []


def _base_url(options: WaitOptions, env: Mapping[str, str]) -> str:
    url = options.base_url or (env.get("ESS_BASE_URL") if options.api == "ess" else None)
    if not url:
        where = {
            "ess": "give --base-url (or set ESS_BASE_URL) to the ESS server to read",
            "saas-batch": "give --base-url for the Fusion Applications host, "
            "e.g. https://fa.example.com",
            "paas": "give --base-url for the PaaS host, e.g. https://apaas.us.oraclecloud.com",
            "huawei": "give --base-url for the service endpoint, "
            "e.g. https://dataarts.cn-north-1.myhuaweicloud.com",
        }[options.api]
        raise ConfigurationError(f"base URL is missing: {where}")
    allow_http = parse_bool(
        env.get("ESS_CALLBACK_ALLOW_HTTP", ""),
        setting="allow http",
        variable="ESS_CALLBACK_ALLOW_HTTP",
    )
    try:
        parts = split_url(url.strip())
    except ValueError:
        return url  # the reader's own check says what is wrong with it
    if parts.userinfo is not None:
        return url  # likewise, without quoting what may be a password
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.host):
        source = "--base-url" if options.base_url else "ESS_BASE_URL"
        raise ConfigurationError(
            f"base URL: {url!r} uses http:// for a host that is not loopback, so credentials "
            f"would travel in clear; use https:// in {source} "
            "(or set ESS_CALLBACK_ALLOW_HTTP=1)"
        )
    return url


def build_reader(options: WaitOptions, env: Mapping[str, str]) -> tuple[HttpReader, list[str]]:
    """The reader for ``options.api`` and the secrets it holds; checks the job id too.

    Raises ``ConfigurationError`` naming what is missing (base URL, identity domain,
    project id, token) before any network.
    """
    api = options.api
    if api not in APIS:
        raise ConfigurationError(f"API {api!r} is not one of {', '.join(APIS)}")
    url = _base_url(options, env)
    auth = auth_from_env(env, prefix="WATCH")
    reader: HttpReader
    if api == "ess":
        hint = WATCH_HINT
        if auth is None:
            auth = auth_from_env(env)
            hint = "set ESS_USERNAME and ESS_PASSWORD(_FILE) or ESS_TOKEN(_FILE), or " + hint
        bundle = env.get("ESS_CA_BUNDLE") or None
        reader = EssReader(
            url,
            auth=auth,
            ca_bundle=check_ca_bundle(bundle) if bundle else None,  # its error names it
            credential_hint=hint,
        )
    elif api in ("saas-batch", "huawei"):
        if not isinstance(auth, BearerAuth):
            raise ConfigurationError(
                f"token is missing: {api} reads with a token; set WATCH_TOKEN or WATCH_TOKEN_FILE"
                + (" (WATCH_USERNAME/WATCH_PASSWORD do not apply)" if auth else "")
            )
        if api == "saas-batch":
            reader = SaasBatchReader(url, auth.token, credential_hint=WATCH_HINT)
        else:
            if not (options.project_id or "").strip():
                raise ConfigurationError(
                    "project id is missing: give --project-id for huawei (the project_id "
                    "of the /v3/{project_id}/jobs/{job_id} path)"
                )
            reader = HuaweiReader(
                url, auth.token, str(options.project_id), credential_hint=WATCH_HINT
            )
    else:
        if not (options.identity_domain or "").strip():
            raise ConfigurationError(
                "identity domain is missing: give --identity-domain for paas "
                "(sent as X-ID-TENANT-NAME and in the path)"
            )
        if isinstance(auth, BearerAuth):
            raise ConfigurationError(
                "credentials: paas reads with Basic auth; set WATCH_USERNAME and "
                "WATCH_PASSWORD (or WATCH_PASSWORD_FILE) instead of WATCH_TOKEN"
            )
        reader = PaasReader(
            url,
            auth.username if auth else None,
            auth.password if auth else None,
            str(options.identity_domain),
            credential_hint=WATCH_HINT,
        )
    reader.url_for(options.job_id)  # a malformed job id is a usage error, found now
    return reader, _secrets(auth)


class _Interrupted(BaseException):
    """Raised in the main thread by our handler while waiting (SIGTERM/SIGINT/SIGHUP)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """While active (main thread only), the handled signals raise ``_Interrupted``;
    once ``finishing`` is set they are noted and ignored so the final status goes out."""

    def __init__(self) -> None:
        self.finishing = False
        self.installed = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._old[signum] = signal.signal(signum, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.finishing:
            log.warning("%s received while reporting the end; finishing first", _name(signum))
            return
        raise _Interrupted(signum)


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Lines:
    """One line on stdout per change (not a terminal)."""

    def __init__(self, what: str, stream: IO[str] | None = None) -> None:
        self.what = what
        self.stream = stream

    def show(self, status: JobStatus) -> None:
        click.echo(f"{self.what}: {status.describe()}", file=self.stream)

    def close(self, final: JobStatus | None) -> None:
        pass


class _Bar:
    """click's progress bar on stderr with the job's percentage and state (a terminal)."""

    def __init__(self, what: str, stream: TextIO | None = None) -> None:
        self.what = what
        self.bar: ProgressBar[JobStatus] = click.progressbar(
            length=100,
            label=what,
            file=stream or sys.stderr,
            show_eta=False,
            show_percent=True,
            item_show_func=self._item,
        )
        self.bar.__enter__()

    @staticmethod
    def _item(status: JobStatus | None) -> str | None:
        if status is None:
            return None
        text = status.describe(percent=False)
        return text if len(text) <= 48 else text[:45] + "..."

    def show(self, status: JobStatus) -> None:
        percent = status.percent
        if status.state is JobState.SUCCEEDED:
            percent = 100
        # Set the position and item, then draw: update() draws only when the position moves,
        # and a change of state alone must show too.
        if percent is not None:
            self.bar.pos = percent
        self.bar.current_item = status
        self.bar.render_progress()

    def close(self, final: JobStatus | None) -> None:
        self.bar.render_finish()
        if final is not None:
            click.echo(f"{self.what}: {final.describe()}")


def run_wait(options: WaitOptions, env: Mapping[str, str], *, tty: bool = False) -> int:
    """Wait as ``ess-callback wait`` does and return the exit status.

    Raises ``ConfigurationError`` (exit 2) before waiting when something is missing,
    including, with ``relay``, any ``ESS_*`` setting of this job's own request.
    """
    what = options.what
    reader, secrets = build_reader(options, env)
    try:
        settings = resolve_settings(env=env) if options.relay else None
    except ConfigurationError as exc:
        # wait's --base-url is the watched API's, and it has no --request-id: name only
        # the variables of this job's own request.
        raise without_option_hints(exc) from None
    display: _Bar | _Lines = _Bar(what) if tty else _Lines(what)
    relay = (
        Relay(settings, what, update_interval=options.update_interval, secrets=secrets)
        if settings is not None
        else None
    )

    def on_change(status: JobStatus) -> None:
        display.show(status)
        if relay is not None:
            relay.progress(status)

    result: JobStatus | EssCallbackError | None = None
    interrupted: _Interrupted | None = None
    cancel_reason: list[str] = []
    with _Signals() as signals:

        def on_cancel(reason: str) -> None:
            # Called from the watcher's thread: stop the wait as SIGTERM would, with a real
            # signal to the main thread (interrupt_main would wait out the poll's sleep).
            cancel_reason.append(reason)
            main = threading.main_thread().ident
            if signals.installed and not signals.finishing and main is not None:
                signal.pthread_kill(main, signal.SIGTERM)

        watcher = None
        try:
            try:
                if settings is not None and settings.cancel_poll and not relay_is_local(relay):
                    from .._cancel import CancelWatcher

                    watcher = CancelWatcher(settings, on_cancel)
                    watcher.start()
                result = wait(
                    reader,
                    options.job_id,
                    timeout=options.timeout,
                    poll=options.poll,
                    on_change=on_change,
                )
            except ConfigurationError:
                raise
            except EssCallbackError as error:
                result = error
            except _Interrupted as signalled:
                interrupted = signalled
        finally:
            signals.finishing = True
            if watcher is not None:
                watcher.stop()
            reader.close()
            display.close(result if isinstance(result, JobStatus) else None)
            if relay is not None and result is None and interrupted is None:
                relay.close()  # an unexpected error: stop the update thread, then propagate
        return _finish(options, result, interrupted, cancel_reason, relay, api=reader.api)


def relay_is_local(relay: Relay | None) -> bool:
    """True when there is no relay or it sends nothing over the network."""
    return relay is None or relay.local


def _finish(
    options: WaitOptions,
    result: JobStatus | EssCallbackError | None,
    interrupted: _Interrupted | None,
    cancel_reason: list[str],
    relay: Relay | None,
    *,
    api: str,
) -> int:
    what = options.what
    status: Status
    message: str | None
    if interrupted is not None or result is None:
        signum = int(interrupted.signum if interrupted is not None else signal.SIGTERM)
        code = 128 + signum
        reason = cancel_reason[0] if cancel_reason else f"interrupted by {_name(signum)}"
        click.echo(f"ess-callback: stopped waiting for {what}: {reason}", err=True)
        status, message = Status.CANCEL, f"stopped waiting for {what}: {reason}"
    elif isinstance(result, JobStatus):
        code = EXIT_OK if result.state is JobState.SUCCEEDED else EXIT_FAILED
        status, message = final_status(what, result)
    else:
        if isinstance(result, RequestNotFoundError):
            code = EXIT_FAILED
        elif isinstance(result, RejectedError):  # credentials (401, 403) or the request
            code = EXIT_USAGE
        else:
            code = EXIT_TEMPFAIL
        click.echo(f"ess-callback: {failure_text(what, result, api=api)}", err=True)
        status, message = final_status(what, result, api=api)
    if relay is None:
        return code
    outcome = relay.finish(status, message)
    if outcome.delivered:
        return code
    click.echo(f"ess-callback: {undelivered_text(outcome)}", err=True)
    # The watched job's own failure is the bigger news; a clean end that could not be
    # relayed says whether it is waiting in the outbox (75) or was refused (1).
    if code == EXIT_OK:
        return EXIT_TEMPFAIL if outcome.spooled_to is not None else EXIT_FAILED
    return code
