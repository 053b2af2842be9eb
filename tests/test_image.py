"""The job's image installs the uploader alone: no Pulumi, no dev tools, and everything it needs.

There is no Docker engine here, so this test performs the Dockerfile's own steps — its COPY lines and
its `pip install` line, read from uploader/Dockerfile itself — into a clean venv, then runs the uploader
there: `--help`, every module imported, `validate` on the examples, and a real `run` job against the
sandbox and an Azurite drop zone.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
from test_run import Zone, connector, file_records, job_env, outcome, records_at, resignation_csv, today_prefix

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "uploader" / "Dockerfile"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def pip_install_args() -> list[str]:
    """The arguments of the Dockerfile's one `python -m pip install` step."""
    installs = [shlex.split(args) for op, args in dockerfile_instructions()
                if op == "RUN" and args.startswith("python -m pip install")]
    assert len(installs) == 1, "the Dockerfile must install with exactly one `RUN python -m pip install ...` line"
    assert "&&" not in installs[0], "keep the install step alone on its RUN line (the test replays it)"
    return installs[0][4:]


def test_dockerfile_shape() -> None:
    steps = dockerfile_instructions()
    ops = [op for op, _ in steps]
    # The base is a build argument (releases pass python:3.11-slim@sha256:<digest>; docs/releases.md).
    assert steps[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    assert steps[1] == ("FROM", "${PYTHON_IMAGE}")
    user = [args for op, args in steps if op == "USER"]
    assert user and not user[-1].startswith(("0", "root")), "the job must not run as root"
    assert ops.index("USER") > ops.index("RUN"), "USER comes after the install steps"
    assert steps[-1] == ("ENTRYPOINT", '["python", "-m", "uploader", "run"]')
    args = pip_install_args()
    assert args[:4] == ["--no-compile", "--require-hashes", "--no-deps", "-r"], "only the hashed lock file"
    assert (REPO / "uploader" / args[4]).is_file(), "the lock file sits beside the Dockerfile"
    assert not any("[" in a for a in args), "no extras: the provisioning and dev groups stay out of the image"
    copies = [shlex.split(a) for op, a in steps if op == "COPY"]
    for *sources, _dest in copies:
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: not in the build context (the repository root)"
    ignore = (REPO / "uploader" / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1:].count("!uploader/") == 1  # everything else stays out of the context


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    """Every requirement of the lock is `name==version` with at least one sha256 (pip's hash-checking mode)."""
    text = (REPO / "uploader" / "requirements.lock").read_text().replace("\\\n", " ")
    requirements = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(requirements) >= 6
    for line in requirements:
        assert re.match(r"^[A-Za-z0-9_.-]+==[^ ]+ ", line), line.split()[0]
        assert "--hash=sha256:" in line, line.split()[0]
    names = {line.split("==")[0].lower() for line in requirements}
    assert {"msal", "requests", "cryptography", "azure-storage-blob", "azure-identity", "rich"} <= names
    assert not names & {"pulumi", "pytest", "ruff", "pyyaml"}, "the image's lock holds runtime dependencies only"


@pytest.fixture(scope="session")
def lean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv built with the Dockerfile's own COPY (filtered by its .dockerignore) and pip steps, and its
    ENV PYTHONPATH; returns its python."""
    from provisioning.tools.selection import image_matcher

    in_context = image_matcher(REPO)
    root = tmp_path_factory.mktemp("image")
    app = root / "app"  # the Dockerfile's WORKDIR /app
    app.mkdir()
    for op, args in dockerfile_instructions():
        if op != "COPY":
            continue
        *sources, dest = shlex.split(args)
        for source in sources:  # Docker's rules: a folder's contents go into dest; a file into dest/ or as dest
            origin = REPO / source
            files = sorted(p for p in origin.rglob("*") if p.is_file()) if origin.is_dir() else [origin]
            for file in files:
                relative = file.relative_to(REPO).as_posix()
                if not in_context(relative):
                    continue  # the .dockerignore keeps it out of the build context
                if origin.is_dir():
                    target = app / dest / file.relative_to(origin)
                else:
                    target = app / dest / origin.name if dest.endswith("/") else app / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
    prefix = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(prefix)
    python = prefix / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pip_install_args()],
                          cwd=app, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the image's pip install failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    # ENV PYTHONPATH=/app: a .pth file in the venv does the same for this interpreter whatever the caller's env.
    (pythonpath,) = [a.split("PYTHONPATH=")[1].split()[0] for op, a in dockerfile_instructions()
                     if op == "ENV" and "PYTHONPATH=" in a]
    assert pythonpath == "/app"
    site = next(prefix.glob("lib/python3*/site-packages"))
    (site / "image-app.pth").write_text(f"{app}\n")
    return python


def _lean(python: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "UPLOADER_"))}
    env.update(kwargs.pop("env", {}))
    return subprocess.run([str(python), *args], cwd=python.parent, env=env, capture_output=True, text=True,
                          timeout=120, **kwargs)


def test_lean_install_runs_the_uploader_without_pulumi(lean_python: Path) -> None:
    helped = _lean(lean_python, "-m", "uploader", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout and "upload" in helped.stdout
    run_help = _lean(lean_python, "-m", "uploader", "run", "--help")
    assert run_help.returncode == 0 and "UPLOADER_DROPZONE_URL" in run_help.stdout
    for absent in ("pulumi", "pulumi_azure_native", "pytest", "hypothesis", "ruff", "yaml", "provisioning"):
        probe = _lean(lean_python, "-c", f"import {absent}")
        assert probe.returncode != 0, f"{absent} is importable in the image's environment"
    where = _lean(lean_python, "-c", "import uploader, sys; print(uploader.__file__); print(sys.prefix)")
    assert where.returncode == 0
    module_file, prefix = where.stdout.split()
    app = Path(prefix).parent / "app"
    assert Path(module_file).is_relative_to(app), "the uploader must come from the image's /app, not the repo"
    for absent in ("sandbox", "examples", "demo.py"):  # dev tools: kept out by the .dockerignore
        assert not (app / "uploader" / absent).exists(), absent


def test_every_uploader_module_imports_in_the_image(lean_python: Path) -> None:
    script = (
        "import importlib, pkgutil, uploader\n"
        "names = sorted(m.name for m in pkgutil.walk_packages(uploader.__path__, 'uploader.')\n"
        "               if m.name not in ('uploader.__main__',))\n"
        "for name in names: importlib.import_module(name)\n"
        "import sys; assert not any(m.split('.')[0] == 'pulumi' for m in sys.modules), 'pulumi was imported'\n"
        "print(len(names))\n"
    )
    done = _lean(lean_python, "-c", script)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {p.stem for p in (REPO / "uploader").glob("*.py")} - {"__init__", "__main__", "demo"}  # demo: dev only
    assert int(done.stdout.strip()) >= len(expected)


def test_examples_validate_in_the_image(lean_python: Path) -> None:
    """The uploader's own validation runs in the image, on the repository's examples (the image leaves them out)."""
    examples = sorted((REPO / "uploader" / "examples").glob("*.json"))
    if not examples:
        pytest.fail("uploader/examples has no mapping files to validate with")
    checked = 0
    for mapping in examples:
        csvs = sorted(mapping.parent.glob(mapping.stem + "*.csv"))
        good = [c for c in csvs if "bad" not in c.name]
        if not good:
            continue
        done = _lean(lean_python, "-m", "uploader", "validate", *map(str, good), "--mapping", str(mapping))
        assert done.returncode == 0, f"{mapping.name}: exit {done.returncode}: {done.stderr[-1500:]}"
        checked += 1
    assert checked >= 1


def test_job_runs_in_the_image_environment(lean_python: Path, azurite, sandbox, new_app,  # noqa: ANN001
                                           tmp_path: Path) -> None:  # noqa: ANN001
    """`python -m uploader run` from the image's venv: blob drop zone through azure-storage-blob, MSAL sign-in,
    upload over TLS — with nothing but the image's dependencies."""
    app = new_app()
    blob_zone = Zone("blob", tmp_path, azurite)
    data = resignation_csv(7)
    blob_zone.put("incoming/departures/x.csv", data)
    env = job_env(sandbox, app, blob_zone, [connector(app.job_id, "departures/*.csv")])
    env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run([str(lean_python), "-m", "uploader", "run"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, outcome(done)
    assert records_at(sandbox, app.job_id) == file_records(data)
    assert blob_zone.paths("processed/") == [today_prefix() + "departures/x.csv"]

