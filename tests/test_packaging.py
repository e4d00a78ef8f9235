"""The wheel built from this checkout installs and works in a fresh virtual environment.

This is the README's install path, checked end to end: build the wheel (as
``python -m pip wheel --no-deps -w dist .`` does), install it into a new venv
with ``pip install --no-deps``, and run the README's first example there,
against the test server. The new venv sees neither the checkout nor ``.venv``:
``.venv`` holds the editable install, whose ``.pth`` file would put ``src/`` on
the path (so ``--system-site-packages`` would test the checkout, not the
wheel). The one dependency, redis-py (with whatever it needs on this Python),
is linked in from ``.venv`` package by package, so the test needs no network.

Offline on purpose, it differs from the README's commands in two ways: the
wheel is built with ``--no-build-isolation`` (``.venv``'s setuptools, the same
backend pip would fetch), from a copy of the files a build reads, so the build
leaves nothing in the work tree; and redis-py is linked rather than downloaded.

The checks on the requirements files need no build: the development
dependencies are not a published extra, and every one is pinned.

It takes about 10 seconds; deselect it with ``-m "not packaging"``.
"""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import redis_lock

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
INSTALL_PAGE = ROOT / "docs" / "install.rst"
WHEEL_COMMAND = "python -m pip wheel --no-deps -w dist ."

pytestmark = pytest.mark.packaging


@dataclass(frozen=True)
class FreshVenv:
    python: Path
    wheel: Path

    def run(self, code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``code`` with the venv's Python, isolated (``-I``: no PYTHONPATH, no cwd on the path)."""
        return subprocess.run(
            [str(self.python), "-I", "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.python.parent,
            env=env,
            check=False,
        )


def _pip(*args: str | Path) -> None:
    """Run this interpreter's pip quietly; a failure shows pip's output."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"pip {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"


def _runtime_closure(name: str) -> list[metadata.Distribution]:
    """``name``'s installed distribution and those it needs at run time on this Python (no extras)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [name]
    while pending:
        dist = metadata.distribution(pending.pop())
        key = canonicalize_name(dist.metadata["Name"])
        if key in found:
            continue
        found[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


def _link_distribution(dist: metadata.Distribution, target: Path) -> None:
    """Symlink the top-level files and directories of ``dist`` (packages, modules, dist-info) into ``target``."""
    site = Path(str(dist.locate_file("")))
    tops = {Path(file).parts[0] for file in dist.files or [] if not Path(file).parts[0].startswith("..")}
    for top in tops:
        source = site / top
        if source.exists() and not (target / top).exists() and top != "__pycache__":
            (target / top).symlink_to(source)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    """A new venv with the wheel of this checkout installed, and redis-py linked in from ``.venv``."""
    base = tmp_path_factory.mktemp("packaging")
    # Build from a copy of what setuptools reads, so no build/ or egg-info lands in the work tree.
    source = base / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    shutil.copy2(README, source)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = base / "dist"
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist, source)
    (wheel,) = dist.glob("python_redis_lock-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = venv / "bin" / "python"
    _pip("--python", python, "install", "--no-deps", "--no-index", "-q", wheel)

    # redis-py and its run-time requirements, and nothing else of .venv, via a .pth line.
    deps = base / "deps"
    deps.mkdir()
    for requirement in _runtime_closure("redis"):
        _link_distribution(requirement, deps)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    (Path(purelib) / "zz_redis_lock_test_deps.pth").write_text(f"{deps}\n")
    return FreshVenv(python=python, wheel=wheel)


def test_version_has_one_source(fresh_venv: FreshVenv) -> None:
    """pyproject.toml writes no version: setuptools reads redis_lock.__version__, and the wheel carries it."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.MULTILINE)
    assert re.search(r'^version = \{ ?attr = "redis_lock.__version__" ?\}$', pyproject, re.MULTILINE)
    assert not re.search(r"^version = \"", pyproject, re.MULTILINE)
    assert fresh_venv.wheel.name.startswith(f"python_redis_lock-{redis_lock.__version__}-")


def test_installed_package_is_the_wheel_with_its_data(fresh_venv: FreshVenv) -> None:
    """In the fresh venv redis_lock comes from the wheel, with every Lua script, py.typed and the right version."""
    done = fresh_venv.run(
        textwrap.dedent(
            """
            import json, sys
            from importlib import metadata, resources
            import redis_lock
            package = resources.files("redis_lock")
            dist = metadata.distribution("python-redis-lock")
            print(json.dumps({
                "file": redis_lock.__file__,
                "prefix": sys.prefix,
                "version": redis_lock.__version__,
                "dist_version": dist.version,
                "extras": dist.metadata.get_all("Provides-Extra") or [],
                "requires": dist.requires or [],
                "lua": {p.name: p.read_text() for p in package.joinpath("lua").iterdir() if p.name.endswith(".lua")},
                "py_typed": package.joinpath("py.typed").is_file(),
                "path": sys.path,
            }))
            """
        )
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["file"]).is_relative_to(found["prefix"]), found["file"]
    assert not any(Path(entry) == ROOT / "src" for entry in found["path"] if entry)
    assert found["version"] == found["dist_version"] == redis_lock.__version__
    assert found["py_typed"]
    on_disk = {
        p.name: p.read_text(encoding="utf-8") for p in (ROOT / "src" / "redis_lock" / "lua").glob("*.lua")
    }
    assert found["lua"] == on_disk
    assert sorted(found["extras"]) == ["django", "hiredis", "otel", "valkey"]
    assert [Requirement(r).name for r in found["requires"] if "extra ==" not in r] == ["redis"]


def _first_python_example(path: Path) -> str:
    """The first ``.. code-block:: python`` of a reST file, dedented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\.\. code-block:: python\s*$", line)) + 1
    body: list[str] = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break
        body.append(line)
    return textwrap.dedent("\n".join(body)).strip() + "\n"


def test_readme_first_example_runs_in_the_fresh_venv(fresh_venv: FreshVenv, redis_url: str) -> None:
    """The README's first example, verbatim, runs with the installed wheel against the test server."""
    example = _first_python_example(README)
    assert "import redis_lock" in example
    done = fresh_venv.run(example, env={"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "Got the lock. Doing some work ..." in done.stdout


def test_docs_give_the_wheel_command() -> None:
    """The README and the install page both give the one-command wheel build this test performs."""
    for page in (README, INSTALL_PAGE):
        text = page.read_text(encoding="utf-8")
        assert WHEEL_COMMAND in text, page
        assert "pip install python-redis-lock" in text, f"{page} should say what PyPI gives today"


def _requirement_names(path: Path) -> set[str]:
    names: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def test_every_dev_dependency_is_pinned() -> None:
    """requirements/dev.txt pins every package of dev.in (with exact versions) and says how it was compiled."""
    pinned_text = (ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8")
    header = "\n".join(line for line in pinned_text.splitlines()[:5] if line.startswith("#"))
    assert "uv pip compile" in header, header
    assert "requirements/dev.in" in header, header
    pins: dict[str, str] = {}
    for raw in pinned_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line!r}"
            pins[canonicalize_name(name)] = version
    wanted = _requirement_names(ROOT / "requirements" / "dev.in")
    assert wanted <= set(pins), sorted(wanted - set(pins))


def test_dev_dependencies_are_not_a_published_extra(fresh_venv: FreshVenv) -> None:
    """The wheel publishes the hiredis, valkey, django and otel extras only, and names no dev tool anywhere."""
    with zipfile.ZipFile(fresh_venv.wheel) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(wheel.read(name))
    assert sorted(message.get_all("Provides-Extra") or []) == ["django", "hiredis", "otel", "valkey"]
    requires = " ".join(message.get_all("Requires-Dist") or [])
    for tool in ("pytest", "mypy", "sphinx", "gevent", "pottery", "ruff"):
        assert tool not in requires.lower(), requires
