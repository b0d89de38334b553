"""``ess-callback check``: is this host set up to report, found before the job runs.

Every check runs (a later one is marked "not checked" only when it needs one that failed),
so one run lists every problem. Nothing is posted: the request is read with GET, as the
``ess`` reader of ``wait`` reads it. Secrets never appear: the details name variables,
never their values.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._answers import CREDENTIAL_HINT, plain_http_answer, plain_http_fix
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    EssCallbackError,
    NotAllowedError,
    RequestNotFoundError,
)
from ._message import Redactor
from ._settings import Settings, auth_from_env, settings_problems
from ._url import split_url

#: seconds for each network check
TIMEOUT = 10.0


@attrs.frozen
class Check:
    """One check: its name, whether it passed, and what was found or what to fix."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """``ok    name: detail`` or ``FAIL  name: detail``."""
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


def _auth_kind(settings: Settings) -> str:
    kind = type(settings.auth).__name__ if settings.auth is not None else None
    return {"BasicAuth": "Basic auth", "BearerAuth": "a bearer token"}.get(
        kind or "", "no credentials"
    )


def _outbox_check(folder: Path) -> Check:
    """The outbox folder: usable now (0700, ours), or creatable."""
    name = "outbox"
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            return Check(name, False, f"{folder} cannot be created; set ESS_CALLBACK_OUTBOX")
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                name,
                False,
                f"{folder} cannot be created: {parent} is not writable by this user; "
                "create it (mode 0700) or set ESS_CALLBACK_OUTBOX to a folder the job may write",
            )
        return Check(name, True, f"{folder} will be created (mode 0700) when first needed")
    except OSError as exc:
        return Check(name, False, f"cannot use {folder}: {exc.strerror or exc}")
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        return Check(
            name,
            False,
            f"{folder} is not a folder (or is a symbolic link); set ESS_CALLBACK_OUTBOX",
        )
    if info.st_uid != os.geteuid():
        return Check(name, False, f"{folder} belongs to another user; run as its owner")
    if info.st_mode & 0o022:
        return Check(
            name, False, f"{folder} is writable by group or others; run: chmod 700 {folder}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(name, False, f"{folder} is not writable; run: chmod 700 {folder}")
    mode = stat.S_IMODE(info.st_mode)
    extra = "" if mode == 0o700 else f" (mode {mode:o}; it is set to 0700 when next written)"
    return Check(name, True, f"{folder} is writable{extra}")


class _Network:
    """The checks that need the server, in order; each stops the ones that need it."""

    def __init__(self, settings: Settings, *, auth_ok: bool, redact: Redactor) -> None:
        self.settings = settings
        self.auth_ok = auth_ok
        self.redact = redact
        assert settings.base_url is not None
        parts = split_url(settings.base_url)
        self.scheme = parts.scheme
        self.host = parts.host
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.checks: list[Check] = []

    def run(self) -> list[Check]:
        address = self.resolve()
        connected = address is not None and self.connect(address)
        tls = connected and (self.scheme != "https" or self.tls(address))
        self.request(reachable=bool(tls))
        return self.checks

    def _skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, False, f"not checked: {why}"))

    def resolve(self) -> Any:
        try:
            found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            self.checks.append(
                Check(
                    "name resolution",
                    False,
                    f"cannot resolve {self.host}: {getattr(exc, 'strerror', None) or exc}; "
                    "check the host in ESS_BASE_URL and this host's DNS",
                )
            )
            return None
        address = found[0][4]
        self.checks.append(Check("name resolution", True, f"{self.host} is {address[0]}"))
        return address

    def connect(self, address: Any) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=TIMEOUT):
                pass
        except OSError as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            self.checks.append(
                Check(
                    "connection",
                    False,
                    f"cannot connect to {self.host} port {self.port} ({address[0]}): {why}; "
                    "check the port in ESS_BASE_URL and any firewall between",
                )
            )
            return False
        self.checks.append(Check("connection", True, f"{self.host} port {self.port} answers"))
        return True

    def tls(self, address: Any) -> bool:
        bundle = self.settings.ca_bundle
        try:
            if bundle and os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
            with (
                socket.create_connection((self.host, self.port), timeout=TIMEOUT) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                version = tls.version()
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or "certificate verify failed"
            fix = (
                f"ESS_CA_BUNDLE ({bundle}) does not hold the CA that signed the server's "
                "certificate; set it to the right PEM file"
                if bundle
                else "if the server's certificate comes from a private CA, set ESS_CA_BUNDLE "
                "to that CA's PEM file"
            )
            self.checks.append(Check("TLS", False, f"certificate verify failed: {reason}; {fix}"))
            return False
        except (ssl.SSLError, OSError) as exc:
            text = str(exc)
            if plain_http_answer(text):
                detail = plain_http_fix(self.settings.base_url or "")
            else:
                detail = f"TLS handshake failed ({text}); check the server's TLS set-up"
            self.checks.append(Check("TLS", False, detail))
            return False
        source = f"CA bundle {bundle}" if bundle else "the system's CA certificates"
        self.checks.append(Check("TLS", True, f"{version}, certificate verified with {source}"))
        return True

    def request(self, *, reachable: bool) -> None:
        settings = self.settings
        if not reachable:
            self._skip("credentials", "the server cannot be reached")
            self._skip("request", "the server cannot be reached")
            return
        if not self.auth_ok:
            self._skip("credentials", "fix the credentials setting first")
            self._skip("request", "fix the credentials setting first")
            return
        if settings.request_id is None:
            self._skip("credentials", "no request id to read (ESS_REQUEST_ID)")
            self._skip("request", "no request id (ESS_REQUEST_ID)")
            return
        from .watch import EssReader

        rid = settings.request_id
        try:
            with EssReader(
                settings.base_url or "",
                auth=settings.auth,
                ca_bundle=settings.ca_bundle,
                timeout=TIMEOUT,
                credential_hint=CREDENTIAL_HINT,
            ) as reader:
                state = (reader.status(rid).raw_status or "").upper()
        except AuthenticationError:
            self.checks.append(
                Check(
                    "credentials",
                    False,
                    f"ESS refused them (401) with {_auth_kind(settings)}; {CREDENTIAL_HINT}",
                )
            )
            self._skip("request", "the credentials were refused")
            return
        except NotAllowedError:
            self.checks.append(
                Check(
                    "credentials",
                    False,
                    f"accepted, but this user may not read request {rid} (403): grant it the "
                    "ESS permission to view and update that job's requests",
                )
            )
            self._skip("request", "no permission")
            return
        except RequestNotFoundError:
            self.checks.append(Check("credentials", True, f"{_auth_kind(settings)} accepted"))
            self.checks.append(
                Check(
                    "request",
                    False,
                    f"no such request {rid} on {settings.base_url} (404): check ESS_REQUEST_ID "
                    "(and that ESS_BASE_URL is the server that runs it)",
                )
            )
            return
        except EssCallbackError as exc:
            self.checks.append(
                Check("request", False, f"cannot read request {rid}: {self.redact(str(exc))}")
            )
            return
        self.checks.append(Check("credentials", True, f"{_auth_kind(settings)} accepted"))
        if state == "RUNNING":
            self.checks.append(
                Check("request", True, f"request {rid} is RUNNING: ready for its status")
            )
        else:
            self.checks.append(
                Check(
                    "request",
                    False,
                    f"request {rid} is {state or 'in an unknown state'}: "
                    "a status posted now will be refused",
                )
            )


def run_checks(
    *,
    base_url: str | None = None,
    request_id: str | None = None,
    request_handle: str | None = None,
    media_type: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in order: settings (each problem its own line), outbox, name
    resolution, connection, TLS (https), credentials and the request's state."""
    env = os.environ if env is None else env
    settings, problems = settings_problems(
        base_url=base_url,
        request_id=request_id,
        request_handle=request_handle,
        media_type=media_type,
        dry_run=False,  # check looks at what a real run needs
        env=env,
    )
    try:
        auth_from_env(env)
        auth_ok = True
    except ConfigurationError:
        auth_ok = False
    redact = Redactor(settings.secrets())
    checks = [Check("settings", False, redact(str(problem))) for problem in problems]
    if not problems:
        checks.append(
            Check(
                "settings",
                True,
                f"request {settings.request_id} at {settings.base_url}, with "
                f"{_auth_kind(settings)}",
            )
        )
    # The folder asked for, even when the settings refused it: its own check (which only
    # looks) says what to do about it.
    wanted = env.get("ESS_CALLBACK_OUTBOX")
    checks.append(_outbox_check(Path(wanted) if wanted else settings.outbox))
    if settings.base_url is None:
        for name in ("name resolution", "connection", "credentials", "request"):
            checks.append(Check(name, False, "not checked: no usable base URL (ESS_BASE_URL)"))
        return checks
    checks += _Network(settings, auth_ok=auth_ok, redact=redact).run()
    return checks
