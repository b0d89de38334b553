"""The watched APIs, each written once: its name on the command line, where its base URL
comes from, and how its reader is built from the resolved settings and the options.

``ess-callback wait`` (its API argument, the reader it builds) and the fake server's
watched jobs (``testing/_watched.py``) go by this table. A new API is a reader in
``_readers.py``, one entry here and its fake in ``testing/_watched.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .._errors import ConfigurationError
from .._settings import BearerAuth, WatchSettings
from ._http import HttpReader
from ._readers import EssReader, HuaweiReader, PaasReader, SaasBatchReader

#: (settings, identity domain, project id) -> the reader, or a ConfigurationError
Build = Callable[[WatchSettings, str | None, str | None], HttpReader]


@attrs.frozen
class WatchedApi:
    """One watched API: its reader's class, how to build it, and the hint for a missing
    base URL; with ``ess_fallback`` the ``ESS_*`` settings serve too (the API is ESS)."""

    reader: type[HttpReader]
    build: Build
    url_hint: str
    ess_fallback: bool = False


def _token(api: str, watched: WatchSettings) -> str:
    auth = watched.auth
    if not isinstance(auth, BearerAuth):
        raise ConfigurationError(
            f"token is missing: {api} reads with a token; set WATCH_TOKEN or WATCH_TOKEN_FILE"
            + (" (WATCH_USERNAME/WATCH_PASSWORD do not apply)" if auth else "")
        )
    return auth.token


def _ess(watched: WatchSettings, identity_domain: str | None, project_id: str | None) -> HttpReader:
    return EssReader(
        watched.base_url,
        auth=watched.auth,
        ca_bundle=watched.ca_bundle,
        credential_hint=watched.credential_hint,
    )


def _saas_batch(
    watched: WatchSettings, identity_domain: str | None, project_id: str | None
) -> HttpReader:
    token = _token("saas-batch", watched)
    return SaasBatchReader(watched.base_url, token, credential_hint=watched.credential_hint)


def _paas(
    watched: WatchSettings, identity_domain: str | None, project_id: str | None
) -> HttpReader:
    auth = watched.auth
    if not (identity_domain or "").strip():
        raise ConfigurationError(
            "identity domain is missing: give --identity-domain for paas "
            "(sent as X-ID-TENANT-NAME and in the path)"
        )
    if isinstance(auth, BearerAuth):
        raise ConfigurationError(
            "credentials: paas reads with Basic auth; set WATCH_USERNAME and "
            "WATCH_PASSWORD (or WATCH_PASSWORD_FILE) instead of WATCH_TOKEN"
        )
    return PaasReader(
        watched.base_url,
        auth.username if auth else None,
        auth.password if auth else None,
        str(identity_domain),
        credential_hint=watched.credential_hint,
    )


def _huawei(
    watched: WatchSettings, identity_domain: str | None, project_id: str | None
) -> HttpReader:
    token = _token("huawei", watched)
    if not (project_id or "").strip():
        raise ConfigurationError(
            "project id is missing: give --project-id for huawei (the project_id "
            "of the /v3/{project_id}/jobs/{job_id} path)"
        )
    return HuaweiReader(
        watched.base_url, token, str(project_id), credential_hint=watched.credential_hint
    )


#: every watched API by its name on the command line, in the order of ``--help``
APIS: dict[str, WatchedApi] = {
    "ess": WatchedApi(
        EssReader,
        _ess,
        "give --base-url (or set ESS_BASE_URL) to the ESS server to read",
        ess_fallback=True,
    ),
    "saas-batch": WatchedApi(
        SaasBatchReader,
        _saas_batch,
        "give --base-url for the Fusion Applications host, e.g. https://fa.example.com",
    ),
    "paas": WatchedApi(
        PaasReader,
        _paas,
        "give --base-url for the PaaS host, e.g. https://apaas.us.oraclecloud.com",
    ),
    "huawei": WatchedApi(
        HuaweiReader,
        _huawei,
        "give --base-url for the service endpoint, e.g. https://cfw.cn-north-4.myhuaweicloud.com",
    ),
}
