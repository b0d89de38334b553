"""Certificates made at test time with the ``openssl`` command (none is kept in the
repository): a CA, and leaf certificates it signs for a given name, or already expired."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


def _run(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str = "ca") -> Path:
    """A self-signed CA in *folder*: ``{name}.pem`` (returned) and ``{name}.key``."""
    folder.mkdir(parents=True, exist_ok=True)
    _run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN=Test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    return folder / f"{name}.pem"


def make_leaf(ca: Path, name: str, san: str, *, expired: bool = False) -> tuple[Path, Path]:
    """A server certificate signed by *ca* for *san* (``DNS:x`` / ``IP:x``); with *expired*
    one valid only in 2020. Returns (certificate, key)."""
    folder = ca.parent
    key, csr, cert = f"{name}.key", f"{name}.csr", f"{name}.pem"
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={name}", cwd=folder)  # fmt: skip
    ext = folder / f"{name}.ext"
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    if not expired:
        _run("x509", "-req", "-in", csr, "-CA", ca.name, "-CAkey", ca.with_suffix(".key").name,
             "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", cert,
             cwd=folder)  # fmt: skip
        return folder / cert, folder / key
    db = folder / f"{name}-db"
    db.mkdir()
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    config = folder / f"{name}-ca.cnf"
    config.write_text(
        "[ca]\ndefault_ca=test\n[test]\n"
        f"database={db}/index.txt\nserial={db}/serial\nnew_certs_dir={db}\n"
        f"certificate={ca}\nprivate_key={ca.with_suffix('.key')}\n"
        "default_md=sha256\npolicy=anything\ncopy_extensions=none\n"
        "[anything]\ncommonName=supplied\n"
    )
    _run("ca", "-batch", "-config", config.name, "-in", csr, "-out", cert,
         "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
         "-extfile", ext.name, cwd=folder)  # fmt: skip
    return folder / cert, folder / key
