"""The settings of the job's own request (``Settings``), resolved once at the edge:
explicit arguments first, then the environment.

Built without attrs (``_frozen.py``): ``run`` resolves them before it starts its command,
and so do the modules it needs until then. ``_settings.py`` re-exports all of it, with the
settings of a flush and of a watched API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ._checks import (
    DEFAULT_MEDIA_TYPE,
    DEFAULT_RETRY_SECONDS,
    MAX_SECONDS,
    check_ca_bundle,
    check_outbox,
    check_proxies,
    parse_bool,
    parse_media_type,
    parse_request_id,
    parse_seconds,
)
from ._credentials import Auth, auth_from_env, redaction_secrets
from ._errors import ConfigurationError
from ._frozen import Frozen
from ._url import parse_base_url

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


class Settings(Frozen):
    """Everything needed to report on one ESS request, validated."""

    __slots__ = _fields = (
        "base_url",
        "request_id",
        "request_handle",
        "auth",
        "media_type",
        "ca_bundle",
        "dry_run",
        "outbox",
        "retry_seconds",
        "cancel_poll",
        "allow_http",
        "cgroup_dir",
    )
    base_url: str | None
    request_id: int | None
    request_handle: str | None
    auth: Auth | None
    media_type: str
    ca_bundle: str | None
    dry_run: bool
    outbox: Path
    retry_seconds: float
    cancel_poll: float | None
    #: ``http://`` to a host that is not loopback allowed (``ESS_CALLBACK_ALLOW_HTTP=1``)
    allow_http: bool
    #: the cgroup folder whose ``memory.events`` tells an OOM kill (``ESS_CALLBACK_CGROUP_DIR``;
    #: None: this process's own cgroup)
    cgroup_dir: Path | None

    def __init__(
        self,
        base_url: str | None,
        request_id: int | None,
        request_handle: str | None,
        auth: Auth | None = None,
        media_type: str = DEFAULT_MEDIA_TYPE,
        ca_bundle: str | None = None,
        dry_run: bool = False,
        outbox: Path | None = None,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        cancel_poll: float | None = None,
        allow_http: bool = False,
        cgroup_dir: Path | None = None,
    ) -> None:
        values = locals()
        if outbox is None:
            values["outbox"] = default_outbox({})
        for name in self._fields:
            object.__setattr__(self, name, values[name])

    def __repr__(self) -> str:
        # The handle identifies a live execution; keep it out of logs like the credentials.
        return (
            f"Settings(base_url={self.base_url!r}, request_id={self.request_id!r}, "
            f"request_handle={'***' if self.request_handle else None}, "
            f"auth={self.auth!r}, media_type={self.media_type!r}, dry_run={self.dry_run!r})"
        )

    def secrets(self) -> list[str]:
        """The secret values these settings hold (for redaction)."""
        return redaction_secrets(self.auth)


def default_outbox(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/ess-callback/outbox``, falling back to ``~/.local/state/...``."""
    state = env.get("XDG_STATE_HOME") or ""
    # The XDG base directory spec says a relative path in these variables is invalid and
    # must be ignored (it would depend on the job's working directory).
    if not os.path.isabs(state):
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "ess-callback" / "outbox"


def resolve_settings(
    *,
    base_url: str | None = None,
    request_id: int | str | None = None,
    request_handle: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    media_type: str | None = None,
    dry_run: bool | None = None,
    outbox: str | os.PathLike[str] | None = None,
    retry_seconds: float | None = None,
    cancel_poll: float | None = None,
    ca_bundle: str | None = None,
    allow_http: bool | None = None,
    require: bool = True,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve and validate settings: explicit arguments win, the environment fills the rest.

    With ``require=False`` (dry run, recording) absent values are allowed but present ones
    are still validated. Dry run itself never requires anything. The first problem found
    raises its ``ConfigurationError``; :func:`settings_problems` lists them all.
    """
    settings = _resolve(
        _Problems(collect=False),
        base_url=base_url,
        request_id=request_id,
        request_handle=request_handle,
        username=username,
        password=password,
        token=token,
        media_type=media_type,
        dry_run=dry_run,
        outbox=outbox,
        retry_seconds=retry_seconds,
        cancel_poll=cancel_poll,
        ca_bundle=ca_bundle,
        allow_http=allow_http,
        require=require,
        env=env,
    )
    assert settings is not None  # every problem raised
    return settings


def settings_problems(
    *,
    base_url: str | None = None,
    request_id: int | str | None = None,
    request_handle: str | None = None,
    media_type: str | None = None,
    dry_run: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, list[ConfigurationError]]:
    """Every problem with the settings at once (``ess-callback check``): the settings (a
    value that has a problem left None or default) and each ``ConfigurationError``, in the
    order of the table."""
    problems = _Problems(collect=True)
    settings = _resolve(
        problems,
        base_url=base_url,
        request_id=request_id,
        request_handle=request_handle,
        media_type=media_type,
        dry_run=dry_run,
        env=env,
    )
    assert settings is not None
    return settings, problems.errors


class _Problems:
    """Where resolving puts a ConfigurationError: raised at once, or collected (``check``)."""

    def __init__(self, *, collect: bool) -> None:
        self.collect = collect
        self.errors: list[ConfigurationError] = []

    def add(self, error: ConfigurationError) -> None:
        if not self.collect:
            raise error
        self.errors.append(error)

    def call(self, func: Callable[..., T], *args: object, **kwargs: object) -> T | None:
        """``func(*args, **kwargs)``; None (the error collected) when it raises one."""
        try:
            return func(*args, **kwargs)
        except ConfigurationError as exc:
            self.add(exc)
            return None


def _resolve(
    problems: _Problems,
    *,
    base_url: str | None = None,
    request_id: int | str | None = None,
    request_handle: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    media_type: str | None = None,
    dry_run: bool | None = None,
    outbox: str | os.PathLike[str] | None = None,
    retry_seconds: float | None = None,
    cancel_poll: float | None = None,
    ca_bundle: str | None = None,
    allow_http: bool | None = None,
    require: bool = True,
    env: Mapping[str, str] | None = None,
) -> Settings | None:
    env = os.environ if env is None else env

    if dry_run is None:
        dry_run = problems.call(
            parse_bool,
            env.get("ESS_CALLBACK_DRY_RUN", ""),
            setting="dry run",
            variable="ESS_CALLBACK_DRY_RUN",
        )
    require = require and not dry_run
    if allow_http is None:
        allow_http = problems.call(
            parse_bool,
            env.get("ESS_CALLBACK_ALLOW_HTTP", ""),
            setting="allow http",
            variable="ESS_CALLBACK_ALLOW_HTTP",
        )
    allow_http = bool(allow_http)

    raw_url = base_url if base_url is not None else (env.get("ESS_BASE_URL") or None)
    url = problems.call(parse_base_url, raw_url, allow_http=allow_http) if raw_url else None
    if url is not None and not dry_run:
        problems.call(check_proxies, env, [url.split(":", 1)[0]])
    if not raw_url and require:
        problems.add(
            ConfigurationError(
                "base URL is missing: set ESS_BASE_URL (or --base-url) to the ESS server, "
                "e.g. https://ess.example.com"
            )
        )

    raw_id = request_id if request_id is not None else (env.get("ESS_REQUEST_ID") or None)
    rid = problems.call(parse_request_id, raw_id) if raw_id is not None and raw_id != "" else None
    if (raw_id is None or raw_id == "") and require:
        problems.add(
            ConfigurationError(
                "request id is missing: set ESS_REQUEST_ID (or --request-id) "
                "to the ESS request number"
            )
        )

    # An empty variable counts as unset (as in the shell); a blank one is malformed.
    handle = request_handle if request_handle is not None else env.get("ESS_REQUEST_HANDLE") or None
    if handle is not None and not handle.strip():
        problems.add(
            ConfigurationError(
                "request handle is empty: set ESS_REQUEST_HANDLE (or --request-handle) "
                "to the handle ESS passed to the job"
            )
        )
    if handle is None and require:
        problems.add(
            ConfigurationError(
                "request handle is missing: set ESS_REQUEST_HANDLE (or --request-handle) "
                "to the handle ESS passed to the job"
            )
        )

    auth = problems.call(auth_from_env, env, username=username, password=password, token=token)

    raw_media = media_type if media_type is not None else (env.get("ESS_MEDIA_TYPE") or None)
    media = (problems.call(parse_media_type, raw_media) if raw_media else None) or (
        DEFAULT_MEDIA_TYPE
    )

    bundle = ca_bundle if ca_bundle is not None else (env.get("ESS_CA_BUNDLE") or None)
    if bundle is not None:
        bundle = problems.call(
            check_ca_bundle,
            bundle,
            variable="ESS_CA_BUNDLE" if ca_bundle is None else "the ca_bundle= argument",
        )

    box: Path | None
    if outbox is not None:
        box = problems.call(check_outbox, Path(outbox), variable="the outbox= argument")
    elif env.get("ESS_CALLBACK_OUTBOX"):
        box = problems.call(check_outbox, Path(env["ESS_CALLBACK_OUTBOX"]))
    else:
        # Not checked: a job with an odd HOME that always delivers must not be refused.
        box = default_outbox(env)

    raw_budget = (
        retry_seconds if retry_seconds is not None else env.get("ESS_CALLBACK_RETRY_SECONDS")
    )
    budget = (
        problems.call(
            parse_seconds,
            raw_budget,
            setting="retry budget",
            variable="ESS_CALLBACK_RETRY_SECONDS",
            allow_zero=True,
        )
        if raw_budget is not None and raw_budget != ""
        else DEFAULT_RETRY_SECONDS
    )

    if cancel_poll is None:
        raw = env.get("ESS_CALLBACK_CANCEL_POLL")
        cancel_poll = (
            problems.call(
                parse_seconds, raw, setting="cancel poll", variable="ESS_CALLBACK_CANCEL_POLL"
            )
            if raw
            else None
        )
    elif not 0 < cancel_poll <= MAX_SECONDS:  # NaN too: it would make a busy poll loop
        problems.add(
            ConfigurationError(
                "cancel poll: must be more than zero seconds and at most ten years "
                "(ESS_CALLBACK_CANCEL_POLL)"
            )
        )

    if problems.errors and not problems.collect:
        return None
    # Collecting (check): what could be resolved, the rest None or default.
    return Settings(
        base_url=url,
        request_id=rid,
        request_handle=handle,
        auth=auth,
        media_type=media,
        ca_bundle=bundle,
        dry_run=bool(dry_run),
        outbox=box if box is not None else default_outbox(env),
        retry_seconds=float(budget if budget is not None else DEFAULT_RETRY_SECONDS),
        cancel_poll=cancel_poll,
        allow_http=allow_http,
        cgroup_dir=Path(env["ESS_CALLBACK_CGROUP_DIR"])
        if env.get("ESS_CALLBACK_CGROUP_DIR")
        else None,
    )


SECRET_SUFFIXES = ("PASSWORD", "TOKEN", "SECRET", "KEY")
MIN_SECRET_LENGTH = 4


def environment_secrets(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Values of the variables named ``*PASSWORD``, ``*TOKEN``, ``*SECRET`` or ``*KEY``.

    Values shorter than four characters are flags (``1``, ``yes``), not secrets: hiding
    them would turn every "exit code 1" into "exit code ***".
    """
    return tuple(
        value
        for name, value in environ.items()
        if name.upper().endswith(SECRET_SUFFIXES) and len(value) >= MIN_SECRET_LENGTH
    )
