"""SPEC sections 1 and 4: what the package exports, its version, its typing marker, and
that importing it (or asking the CLI for its version) stays cheap."""

from __future__ import annotations

import ast
import configparser
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import ess_callback

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(ess_callback.__file__).resolve().parent
CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "ess-callback")

SPEC_EXPORTS = {
    "JobExecution",
    "SchedulerClient",
    "Status",
    "Outcome",
    "Callback",
    "BusinessError",
    "JobWarning",
    "JobCancelled",
    "JobPaused",
    "JobSuspended",
    "EssCallbackError",
    "ConfigurationError",
    "DeliveryError",
    "RejectedError",
    "InvalidInputError",
    "AuthenticationError",
    "NotAllowedError",
    "RequestNotFoundError",
    "SchedulerUnavailableError",
    "BearerAuth",
    "__version__",
    "job",  # SPEC section 13
}


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter with the installed package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(ROOT.parent),
    )


def test_all_is_exactly_the_spec_list() -> None:
    """``ess_callback.__all__`` is the SPEC list (sections 4 and 13), sorted, each name present."""
    assert set(ess_callback.__all__) == SPEC_EXPORTS
    assert len(ess_callback.__all__) == len(SPEC_EXPORTS)
    assert ess_callback.__all__ == sorted(ess_callback.__all__)
    for name in ess_callback.__all__:
        assert getattr(ess_callback, name) is not None


def test_public_names_have_docstrings() -> None:
    """Every exported class has a docstring."""
    for name in SPEC_EXPORTS - {"__version__"}:
        assert (getattr(ess_callback, name).__doc__ or "").strip(), name


def test_error_tree() -> None:
    """The error classes form the tree SPEC section 4 describes."""
    from ess_callback import (
        AuthenticationError,
        ConfigurationError,
        DeliveryError,
        EssCallbackError,
        InvalidInputError,
        NotAllowedError,
        RejectedError,
        RequestNotFoundError,
        SchedulerUnavailableError,
    )

    assert issubclass(ConfigurationError, EssCallbackError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(DeliveryError, EssCallbackError)
    for cls in (InvalidInputError, AuthenticationError, NotAllowedError, RequestNotFoundError):
        assert issubclass(cls, RejectedError)
    assert issubclass(RejectedError, DeliveryError)
    assert issubclass(SchedulerUnavailableError, DeliveryError)
    assert not issubclass(SchedulerUnavailableError, RejectedError)
    error = InvalidInputError(
        "bad", http_status=400, error_code="ESS-00400", title="t", detail="d", attempts=1
    )
    assert (error.http_status, error.error_code, error.title, error.detail, error.attempts) == (
        400,
        "ESS-00400",
        "t",
        "d",
        1,
    )


def test_version_matches_installed_distribution() -> None:
    """``__version__`` is the version of the installed ``ess-callback`` distribution."""
    assert ess_callback.__version__ == importlib.metadata.version("ess-callback")


def test_version_is_a_plain_literal() -> None:
    """``__version__`` is assigned a string literal in ``__init__.py`` (no metadata look-up)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    values = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)
    ]
    assert len(values) == 1
    assert isinstance(values[0], ast.Constant)
    assert isinstance(values[0].value, str)
    assert values[0].value == ess_callback.__version__


def test_setup_cfg_reads_the_version_attribute() -> None:
    """setup.cfg takes the version from the package with ``attr:``, and ships py.typed."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["metadata"]["name"] == "ess-callback"
    assert config["metadata"]["version"].strip() == "attr: ess_callback.__version__"
    assert "py.typed" in config["options.package_data"]["ess_callback"]
    requires = config["options"]["install_requires"].split()
    names = {r.split(">")[0].split("=")[0].split("<")[0] for r in requires if r}
    assert names == {"requests", "attrs", "click"}
    assert config["options"]["python_requires"].strip() == ">=3.10"


def test_py_typed_marker_present() -> None:
    """The package carries the PEP 561 ``py.typed`` marker."""
    assert (PACKAGE / "py.typed").is_file()


def test_console_script_entry_point() -> None:
    """The ``ess-callback`` console script points at the click group."""
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (entry,) = (e for e in scripts if e.name == "ess-callback")
    assert entry.value == "ess_callback.cli:main"
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert any(e.value == "ess_callback.testing._plugin" for e in plugins)


@pytest.mark.integration
def test_wheel_ships_py_typed(tmp_path: Path) -> None:
    """A wheel built from the sources contains ``py.typed`` and no test files."""
    # Build from a copy: an in-tree build would leave build/ behind in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "ess_callback", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if result.returncode != 0 and "setuptools" in result.stderr.lower():
        pytest.skip(f"cannot build a wheel offline here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("ess_callback-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ess_callback/py.typed" in names
    assert "ess_callback/__init__.py" in names
    assert not any(n.startswith("tests/") for n in names)
    dist_info = f"ess_callback-{ess_callback.__version__}.dist-info"
    assert f"{dist_info}/METADATA" in names
    # setuptools 77 and later put license files under licenses/
    shipped = {f"{dist_info}/LICENSE", f"{dist_info}/licenses/LICENSE"} & set(names)
    assert len(shipped) == 1, names
    assert zipfile.ZipFile(wheel).read(shipped.pop()) == (ROOT / "LICENSE").read_bytes()
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-File: LICENSE" in metadata.splitlines()


#: what a checkout holds that is not source (virtual environments, caches, build output)
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".ci-venv", "__pycache__", "*.py[cod]", ".*_cache", ".hypothesis",
    "build", "dist", "*.egg-info", "results",
)  # fmt: skip


def build_sdist(tmp_path: Path) -> tarfile.TarFile:
    """The sdist built from a copy of this source tree, opened."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip().splitlines()[-1]
    return tarfile.open(tmp_path / "dist" / name)


def source_files(folder: Path) -> set[str]:
    """The source files under *folder*, relative to the root, as an sdist must hold them
    (caches, bytecode and hidden files left out)."""
    found = set()
    for path in folder.rglob("*"):
        parts = path.relative_to(ROOT).parts
        hidden = any(part == "__pycache__" or part.startswith(".") for part in parts)
        if path.is_file() and not hidden and path.suffix not in (".pyc", ".pyo"):
            found.add("/".join(parts))
    return found


@pytest.mark.integration
def test_sdist_holds_the_whole_suite_and_the_license(tmp_path: Path) -> None:
    """The sdist holds every file of tests/, samples/ and docs/ (conftest.py and the
    fixtures included; the manual, whose examples are tests, without its build output), the
    changelog and LICENSE, so the suite runs from the unpacked sdist."""
    with build_sdist(tmp_path) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        names = {n.partition("/")[2] for n in sdist.getnames()}
        pkg_info = sdist.extractfile(f"{top}/PKG-INFO")
        assert pkg_info is not None
        metadata = pkg_info.read().decode()
    expected = source_files(ROOT / "tests") | source_files(ROOT / "samples")
    expected |= {n for n in source_files(ROOT / "docs") if not n.startswith("docs/_build/")}
    assert "tests/conftest.py" in expected
    assert {"docs/conf.py", "docs/index.md", "docs/reference/cli.md"} <= expected
    assert not any(n.startswith("docs/_build/") for n in names)
    assert any(n.startswith("tests/fixtures/") for n in expected)
    assert expected - names == set()
    for name in ("LICENSE", "CHANGELOG.md", "README.md", "setup.cfg", "ess_callback/py.typed"):
        assert name in names
    assert "License-File: LICENSE" in metadata.splitlines()


@pytest.mark.integration
def test_tests_run_from_the_unpacked_sdist_without_touching_home(tmp_path: Path) -> None:
    """Tests run from the unpacked sdist pass and write no outbox under the user's home
    (``~/.local/state/ess-callback``): its conftest.py gives each test its own folder."""
    with build_sdist(tmp_path) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        # the "data" filter (Python 3.12 warns without one) where this Python has it
        safe: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        sdist.extractall(tmp_path / "unpacked", **safe)  # type: ignore[arg-type]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESS_", "XDG_", "PYTEST"))}
    env["HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/test_execution.py", "tests/test_outbox.py"],
        cwd=tmp_path / "unpacked" / top,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
    assert not (home / ".local" / "state" / "ess-callback").exists()
    assert list(home.rglob("*")) == []  # nothing at all, in fact: these tests run no pip


def test_license_is_the_apache_2_text() -> None:
    """LICENSE holds the Apache License 2.0, the license setup.cfg declares."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["metadata"]["license"] == "Apache-2.0"
    assert config["metadata"]["license_files"].split() == ["LICENSE"]


CHECK_MODULES = """
import sys
heavy = sorted(m for m in ("requests", "urllib3", "http.server") if m in sys.modules)
if heavy:
    sys.stderr.write("HEAVY " + " ".join(heavy) + "\\n")
"""


@pytest.mark.integration
@pytest.mark.parametrize("module", ["ess_callback", "ess_callback.testing", "ess_callback.cli"])
def test_import_is_cheap(module: str) -> None:
    """Importing the package, its testing kit or its CLI loads neither requests nor http.server."""
    result = run_python(f"import {module}\n{CHECK_MODULES}")
    assert result.returncode == 0, result.stderr
    assert "HEAVY" not in result.stderr, result.stderr
    # The check itself works: importing requests is seen.
    seen = run_python(f"import {module}, requests\n{CHECK_MODULES}")
    assert "HEAVY requests" in seen.stderr


@pytest.mark.integration
@pytest.mark.parametrize("args", [["--version"], ["-V"], ["--help"], ["send", "--help"]])
def test_cli_version_and_help_are_cheap(args: list[str]) -> None:
    """``ess-callback --version`` and ``--help`` answer without importing requests."""
    code = (
        "import atexit\n"
        f"atexit.register(lambda: exec({CHECK_MODULES!r}))\n"
        "from ess_callback.cli import main\n"
        f"main({args!r}, prog_name='ess-callback')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "HEAVY" not in result.stderr, result.stderr
    if args[0] in ("--version", "-V"):
        assert result.stdout.strip() == f"ess-callback {ess_callback.__version__}"


@pytest.mark.integration
def test_resolving_settings_is_cheap() -> None:
    """Resolving settings (the start of ``run``) loads neither requests nor ssl; only a CA
    bundle to check loads ssl."""
    code = (
        "import sys\n"
        "from ess_callback._settings import resolve_settings\n"
        "env = {'ESS_BASE_URL': 'https://ess.example.com', 'ESS_REQUEST_ID': '1',\n"
        "       'ESS_REQUEST_HANDLE': 'h', 'ESS_TOKEN': 'tok'}\n"
        "resolve_settings(env=env)\n"
        "print(sorted(m for m in ('ssl', 'requests', 'urllib3') if m in sys.modules))\n"
        "import certifi\n"
        "resolve_settings(env={**env, 'ESS_CA_BUNDLE': certifi.where()})\n"
        "print('ssl' in sys.modules)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True"]


@pytest.mark.integration
def test_console_script_version() -> None:
    """The installed console script prints ``ess-callback <version>`` and exits 0."""
    result = subprocess.run(
        [CONSOLE_SCRIPT, "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ess-callback {ess_callback.__version__}"
    assert result.stderr == ""


#: how a platform without POSIX signals or fcntl (Windows) is simulated in a fresh interpreter
NO_POSIX = {
    "SIGHUP": "import signal\ndel signal.SIGHUP\n",
    "fcntl": "import sys\nsys.modules['fcntl'] = None\n",
}


@pytest.mark.integration
@pytest.mark.parametrize(("lacking", "named"), [("SIGHUP", "signal.SIGHUP"), ("fcntl", "fcntl")])
@pytest.mark.parametrize(
    "statement",
    [
        "from ess_callback import JobExecution",
        "from ess_callback import job",
        "import ess_callback.outbox",
    ],
)
def test_off_posix_the_import_error_says_what_is_posix_only(
    lacking: str, named: str, statement: str
) -> None:
    """Without SIGHUP or fcntl, importing JobExecution, job or the outbox raises an ImportError
    that says what is POSIX-only and what this Python lacks, not "cannot import name"."""
    code = (
        f"{NO_POSIX[lacking]}"
        "try:\n"
        f"    {statement}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('IMPORTED')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "cannot import name" not in message
    assert "need a POSIX system" in message
    assert "JobExecution" in message and "ess-callback command" in message
    assert named in message


@pytest.mark.integration
@pytest.mark.parametrize("lacking", ["SIGHUP", "fcntl"])
def test_off_posix_the_portable_names_still_import(lacking: str) -> None:
    """Without SIGHUP or fcntl, the value types, the errors, SchedulerClient and the
    testing kit still import."""
    portable = sorted(set(ess_callback.__all__) - {"JobExecution", "job"})
    code = (
        f"{NO_POSIX[lacking]}"
        f"from ess_callback import {', '.join(portable)}\n"
        "from ess_callback.testing import FakeScheduler, record_callbacks\n"
        "print('OK')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK"


@pytest.mark.integration
@pytest.mark.parametrize("lacking", ["SIGHUP", "fcntl"])
def test_off_posix_a_command_is_one_line_and_exit_2(lacking: str) -> None:
    """Without SIGHUP or fcntl, a command says in one line that it needs POSIX (exit 2)."""
    code = f"{NO_POSIX[lacking]}from ess_callback.cli import main\nmain(['send', 'SUCCESS'])\n"
    result = run_python(code)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ess-callback: ") and "need a POSIX system" in lines[0]
