"""Each setting's value, checked on its own: yes/no words, request ids, media types, numbers
of seconds, the CA bundle and the outbox path. Every error names the setting, the variable
(or option) to fix, and how; nothing here reads the environment (``_settings.py`` does).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from ._errors import ConfigurationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without loading typing (see _launch.py)

if TYPE_CHECKING:
    from types import ModuleType

MEDIA_TYPES = ("application/json", "application/vnd.oracle.resource+json")
DEFAULT_MEDIA_TYPE = MEDIA_TYPES[0]
DEFAULT_RETRY_SECONDS = 60.0
INT64_MAX = 2**63 - 1
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


def parse_bool(value: str, *, setting: str, variable: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigurationError(
        f"{setting}: {value!r} is not a yes/no value; set {variable} to 1/true/yes or 0/false/no"
    )


def parse_request_id(value: object, *, variable: str = "ESS_REQUEST_ID") -> int:
    """A positive int64, from an int or a string of digits."""
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\+?[0-9]+", text):
            raise ConfigurationError(
                f"request id: {str(value)!r} is not a positive integer; "
                f"set {variable} (or --request-id) to the ESS request number"
            )
        number = int(text)
    if not 0 < number <= INT64_MAX:
        raise ConfigurationError(
            f"request id: {number} is out of range (1 to {INT64_MAX}); "
            f"set {variable} (or --request-id) to the ESS request number"
        )
    return number


def check_ca_bundle(path: str, *, variable: str = "ESS_CA_BUNDLE", load: bool = True) -> str:
    """Load a CA bundle (a PEM file, or a folder of hashed certificates) once, so that an
    unusable one is a ``ConfigurationError`` naming *variable* now, not a TLS error at every
    attempt of every send. Without *load*, only that it exists is checked (requests would
    fail at send time with an OSError naming no setting)."""
    hint = f"set {variable} to a PEM file of CA certificates (or a folder of them)"
    if not os.path.exists(path):
        raise ConfigurationError(f"CA bundle: {path} does not exist; {hint}")
    if not load:
        return path
    import ssl  # only when a bundle is set: the common path stays light

    try:
        if os.path.isdir(path):
            # capath is only read during a handshake: look for one certificate now.
            if not _folder_holds_a_certificate(path, ssl):
                raise ssl.SSLError("no certificate in the folder")
        else:
            ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ConfigurationError(
            f"CA bundle: {path} holds no usable PEM certificate; {hint}"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"CA bundle: cannot read {path}: {exc.strerror or exc}; {hint}"
        ) from None
    return path


def _folder_holds_a_certificate(path: str, ssl: ModuleType, limit: int = 500) -> bool:
    """True when one of the (first *limit*) files of *path* loads as a CA certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with os.scandir(path) as entries:
        for count, entry in enumerate(entries):
            if count >= limit:
                break
            if not entry.is_file():
                continue
            try:
                context.load_verify_locations(cafile=entry.path)
            except (ssl.SSLError, OSError, UnicodeDecodeError):
                continue
            if context.cert_store_stats().get("x509_ca", 0):
                return True
    return False


def folder_problem(info: os.stat_result) -> str | None:
    """What makes a folder (its ``lstat``/``fstat``) unfit to hold outbox files, or None:
    a symbolic link, not a folder, another user's, or writable by group or others."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.geteuid():
        return f"belongs to another user (uid {info.st_uid})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        return f"is writable by {who} (mode {mode:o})"
    return None


#: the outbox's own subfolders (outbox/_outbox.py names them too)
OUTBOX_SUBFOLDERS = ("rejected", "corrupt")


def check_outbox(path: Path, *, variable: str = "ESS_CALLBACK_OUTBOX") -> Path:
    """Refuse an outbox path that can never be a folder (it, or the nearest existing parent,
    is a file), or that exists but is unsafe (a symbolic link, another user's, writable by
    others: see ``folder_problem``; its subfolders too), naming *variable*. Other trouble
    (permissions) shows at spool time."""
    hint = f"set {variable} to a folder the job may write"
    try:
        for folder in (path, *(path / name for name in OUTBOX_SUBFOLDERS)):
            if os.path.lexists(folder):
                problem = folder_problem(os.lstat(folder))
                if problem is not None and problem != "is not a folder":
                    raise ConfigurationError(
                        f"outbox folder: {folder} {problem}; it is not used (kept statuses "
                        f"carry the request handle): {hint}, of your own, mode 0700"
                    )
        if path.exists() and not path.is_dir():
            raise ConfigurationError(f"outbox folder: {path} exists and is not a folder; {hint}")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigurationError(
                        f"outbox folder: {path} cannot be created, {parent} is not a folder; "
                        + hint
                    )
                break
    except OSError as exc:  # a name too long, a loop of symbolic links...
        raise ConfigurationError(
            f"outbox folder: cannot use {path}: {exc.strerror or exc}; {hint}"
        ) from None
    return path


def parse_media_type(value: str, *, variable: str = "ESS_MEDIA_TYPE") -> str:
    text = value.strip().lower()
    if text not in MEDIA_TYPES:
        raise ConfigurationError(
            f"media type: {value!r} is not supported; set {variable} (or --media-type) to "
            + " or ".join(MEDIA_TYPES)
        )
    return text


#: the longest duration any setting or option takes (ten years): longer ones overflow the
#: operating system's timers, and no job waits that long
MAX_SECONDS = 10 * 365 * 24 * 3600.0


def parse_seconds(value: object, *, setting: str, variable: str, allow_zero: bool = False) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    # NaN fails every comparison, so it is refused here too (it would make a busy loop).
    if not ((number >= 0 if allow_zero else number > 0) and number <= MAX_SECONDS):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigurationError(
            f"{setting}: {value!r} is not a number of seconds ({bound}, at most ten years); "
            f"set {variable}"
        )
    return number


def without_option_hints(error: ConfigurationError) -> ConfigurationError:
    """*error* for a command without the ``--base-url``-style options of ``run`` and ``send``
    (``wait --relay``, ``flush``): its "(or --option)" hints go, the variables stay."""
    return ConfigurationError(re.sub(r" \(or --[a-z-]+\)", "", str(error)))


#: proxy schemes the HTTP stack can use (SOCKS only with PySocks installed)
_PROXY_SCHEMES = ("http", "https")
_SOCKS_SCHEMES = ("socks4", "socks4a", "socks5", "socks5h")


def check_proxies(env: Mapping[str, str], schemes: Iterable[str] = ("https", "http")) -> None:
    """Refuse, before anything runs, a proxy variable that requests would refuse at the
    first call for one of *schemes* (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, either
    case, as requests reads them): no host, a scheme it cannot use, a bad port, ``socks5://``
    without PySocks. The message names the variable, never its value (it may hold a
    password). ``NO_PROXY=*`` turns every proxy off, as in requests."""
    if (env.get("no_proxy") or env.get("NO_PROXY") or "").strip() == "*":
        return
    for scheme in schemes:
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY", "all_proxy", "ALL_PROXY"):
            value = env.get(name)
            if value:
                problem = proxy_problem(value)
                if problem is not None:
                    raise ConfigurationError(
                        f"proxy: {name} (used for {scheme}:// calls) {problem}; fix it, or "
                        "unset it (value not shown: it may hold a password)"
                    )
                break  # the first one set is the one requests uses for this scheme


def proxy_problem(value: str) -> str | None:
    """What makes *value* unusable as a proxy URL for requests, or None."""
    from urllib.parse import urlsplit

    text = value.strip()
    if "://" not in text:
        text = "http://" + text  # requests' own default
    try:
        parts = urlsplit(text)
        host, _port = parts.hostname, parts.port
    except ValueError as exc:
        return f"is not a valid URL ({'bad port' if 'port' in str(exc) else 'malformed'})"
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        return "holds a space or a control character"
    if not host:
        return "names no host"
    scheme = parts.scheme.lower()
    if scheme in _SOCKS_SCHEMES:
        import importlib.util

        if importlib.util.find_spec("socks") is None:  # PySocks, as urllib3 imports it
            return (
                f"is a {scheme}:// proxy, which needs PySocks "
                "(pip install 'requests[socks]') and it is not installed"
            )
        return None
    if scheme not in _PROXY_SCHEMES:
        return f"has the scheme {scheme}://, which is not a proxy scheme (http:// or https://)"
    return None


def python_hints(error: ConfigurationError) -> ConfigurationError:
    """*error* for Python code (``JobExecution``): "(or --base-url)" becomes "(or the
    base_url= argument)", since a command-line flag means nothing inside a script."""

    def argument(found: re.Match[str]) -> str:
        return f"(or the {found.group(1).replace('-', '_')}= argument)"

    return ConfigurationError(re.sub(r"\(or --([a-z-]+)\)", argument, str(error)))
