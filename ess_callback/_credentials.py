"""Credentials: the two auth kinds, and reading secrets from arguments, variables and files.

A secret travels in an HTTP header, so it is checked before anything is sent: a control
character (often a second line in a ``_FILE``) would be refused by the HTTP library with the
header value, secret included, in its message. Every check here names the variable the
secret came from, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._errors import ConfigurationError
from ._frozen import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)
if TYPE_CHECKING:
    from typing import Any

#: C0 and C1 control characters and DEL: never part of a credential
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: lone surrogates: how Python keeps bytes of the environment that are not UTF-8
_SURROGATE = re.compile("[\ud800-\udfff]")


def secret_problem(value: str, *, bearer: bool = False) -> str | None:
    """What makes *value* unusable as a credential in a header, or None. Never quotes it."""
    if _SURROGATE.search(value):
        # The variable was set with bytes that are not UTF-8 (Python keeps them as lone
        # surrogates): no HTTP header can carry them.
        return "holds bytes that are not UTF-8 text: set it as UTF-8"
    found = _CONTROL.search(value)
    if found is not None:
        char = found.group(0)
        kind = "a line break" if char in "\r\n" else f"a control character (U+{ord(char):04X})"
        return f"contains {kind}: give the secret alone, on one line"
    if bearer:
        if any(c.isspace() for c in value):
            return "contains a space: a bearer token has none"
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            return "has characters an HTTP header cannot carry: a bearer token is ASCII text"
    return None


def check_secret(value: str, *, setting: str, source: str, bearer: bool = False) -> str:
    """Return *value*, or raise ``ConfigurationError`` naming *source* (never the value)."""
    problem = secret_problem(value, bearer=bearer)
    if problem is not None:
        raise ConfigurationError(f"{setting}: {source} {problem}")
    return value


class BearerAuth(Frozen):
    """OAuth bearer token authentication (``Authorization: Bearer <token>``).

    The token must fit in a header: no control characters, no spaces, Latin-1 only
    (``ConfigurationError`` otherwise).
    """

    __slots__ = _fields = ("token",)
    token: str

    def __init__(self, token: str) -> None:
        check_secret(token, setting="token", source="the token given", bearer=True)
        object.__setattr__(self, "token", token)

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class BasicAuth(Frozen):
    """HTTP Basic credentials, kept out of every repr (no control characters allowed)."""

    __slots__ = _fields = ("username", "password")
    username: str
    password: str

    def __init__(self, username: str, password: str) -> None:
        for name, value in (("username", username), ("password", password)):
            check_secret(value, setting=name, source=f"the {name} given")
            object.__setattr__(self, name, value)

    def as_tuple(self) -> tuple[str, str]:
        """``(username, password)``."""
        return (self.username, self.password)

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


Auth = BasicAuth | BearerAuth


def auth_secrets(auth: object) -> list[str]:
    """The secret values an auth object holds."""
    if isinstance(auth, BasicAuth):
        return [auth.password]
    if isinstance(auth, BearerAuth):
        return [auth.token]
    return []


def redaction_secrets(auth: object) -> list[str]:
    """What a redactor must hide for *auth*: its secrets and, for Basic, also
    ``username:password``, whose base64 form is what the ``Authorization`` header carries
    (and what ``curl -v`` prints)."""
    if isinstance(auth, tuple) and len(auth) == 2 and all(isinstance(p, str) for p in auth):
        return [auth[1], f"{auth[0]}:{auth[1]}"]
    if isinstance(auth, BasicAuth):
        return [auth.password, f"{auth.username}:{auth.password}"]
    return auth_secrets(auth)


def read_secret_file(path: str, *, setting: str, variable: str) -> str:
    """Read a secret from a file, stripping one trailing newline (and CR).

    Anything else that is not part of a secret (a second line, a NUL) is an error naming
    *variable*: sent as is, it would be refused or, worse, mean another credential.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}: cannot read {variable}={path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{setting}: {variable}={path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigurationError(f"{setting}: the file named by {variable} ({path}) is empty")
    problem = secret_problem(text)
    if problem is not None:
        raise ConfigurationError(f"{setting}: the file named by {variable} ({path}) {problem}")
    return text


def secret_from_env(env: Mapping[str, str], name: str, setting: str) -> str | None:
    """A secret from ``NAME`` or ``NAME_FILE``; both set at once is an error."""
    direct = env.get(name) or None
    path = env.get(f"{name}_FILE") or None
    if direct is not None and path is not None:
        raise ConfigurationError(f"{setting}: set {name} or {name}_FILE, not both")
    if path is not None:
        return read_secret_file(path, setting=setting, variable=f"{name}_FILE")
    if direct is not None:
        check_secret(direct, setting=setting, source=name)
    return direct


def _secret_source(explicit: str | None, env: Mapping[str, str], name: str, what: str) -> str:
    """Where a secret came from, as a message names it."""
    if explicit is not None:
        return f"the {what}= argument"
    return f"{name}_FILE" if env.get(f"{name}_FILE") else name


def auth_from_env(
    env: Mapping[str, str],
    *,
    prefix: str = "ESS",
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> Auth | None:
    """Basic or bearer credentials from explicit values, then ``{prefix}_*`` variables.

    An explicit credential of one kind wins over the environment's credentials of the other
    kind (explicit arguments win); both kinds at once, from the same source, is an error.
    Every secret is checked (see ``secret_problem``); an error names where it came from.
    """
    explicit_basic = username is not None or password is not None
    explicit_bearer = token is not None
    user = username
    if user is None and not explicit_bearer:
        user = env.get(f"{prefix}_USERNAME") or None
    pwd = password
    if pwd is None and not explicit_bearer:
        pwd = secret_from_env(env, f"{prefix}_PASSWORD", "password")
    tok = token
    if tok is None and not explicit_basic:
        tok = secret_from_env(env, f"{prefix}_TOKEN", "token")
    if tok is not None and (user is not None or pwd is not None):
        raise ConfigurationError(
            f"credentials: both Basic ({prefix}_USERNAME/{prefix}_PASSWORD) and bearer "
            f"({prefix}_TOKEN) credentials are set; keep only one kind"
        )
    if tok is not None:
        # Checked last, so that the structural errors above read the same for any token.
        source = _secret_source(token, env, f"{prefix}_TOKEN", "token")
        return BearerAuth(check_secret(tok, setting="token", source=source, bearer=True))
    if user is not None and pwd is None:
        raise ConfigurationError(
            f"password: {prefix}_USERNAME is set but no password; "
            f"set {prefix}_PASSWORD or {prefix}_PASSWORD_FILE"
        )
    if pwd is not None and user is None:
        raise ConfigurationError(
            f"username: a password is set but {prefix}_USERNAME is not; set {prefix}_USERNAME"
        )
    if user is not None and pwd is not None:
        source = "the username= argument" if username is not None else f"{prefix}_USERNAME"
        check_secret(user, setting="username", source=source)
        if password is not None:
            check_secret(pwd, setting="password", source="the password= argument")
        return BasicAuth(user, pwd)
    return None
