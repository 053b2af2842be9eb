"""`python -m provisioning fleet preview|up|refresh` and `certs`, through their real command line.

`fleet` drives Pulumi's real Automation API, which runs a stand-in Pulumi CLI (tests/fake_pulumi.py, installed
as <root>/bin/pulumi — where automation's PulumiCommand(root=...) looks): the tests check ordering,
parallelism, failure isolation, flags (--expect-no-changes, --replace for rotation), logs and the summary.
`certs` reads exported `pulumi stack output --json` files, or the stand-in CLI's `stack output`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
STACKS = ("alpha", "bravo", "charlie", "delta", "echo")


def provisioning(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def stacks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("stacks")
    for name in STACKS:
        done = provisioning("new-stack", name, "--cloud", "gcc", "--tenant-id", TENANT, "--stacks-dir", str(directory))
        assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    """(the stand-in CLI's install root, its state directory with plan.json and calls.jsonl)."""
    root, state = tmp_path / "pulumi", tmp_path / "state"
    (root / "bin").mkdir(parents=True)
    state.mkdir()
    exe = root / "bin" / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fake_pulumi.py"}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return root, state


def plan(state: Path, **stacks: dict) -> None:
    (state / "plan.json").write_text(json.dumps({name: stacks.get(name, {}) for name in STACKS}))


def calls(state: Path, command: str) -> list[dict]:
    lines = (state / "calls.jsonl").read_text().splitlines()
    return [c for c in map(json.loads, lines) if c["command"] == command]


def run_fleet(fake: tuple[Path, Path], stacks_dir: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    root, state = fake
    return provisioning("fleet", *args, "--pulumi-root", str(root), "--stacks-dir", str(stacks_dir),
                        "--log-dir", str(tmp_path / "logs"), env={"FAKE_PULUMI_DIR": str(state)})


def test_preview_every_stack_one_failure_isolated(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state, bravo={"fail": "bravo's backend refused the lock"}, delta={"changes": {"update": 2, "same": 20}},
         alpha={"changes": {"same": 22}})
    done = run_fleet(fake, stacks_dir, tmp_path, "preview", "--all", "--parallel", "3")
    assert done.returncode == 1, done.stderr
    # Every stack ran, including those after the failing one.
    assert sorted(c["stack"] for c in calls(state, "preview")) == sorted(STACKS)
    table = done.stdout
    assert "| delta | ok | 0 | 2 | 0 | 0 | 20 |" in table
    assert "| alpha | ok | 0 | 0 | 0 | 0 | 22 |" in table
    assert "| bravo | **failed** |" in table
    assert "5 stack(s): 4 ok, 1 failed" in table
    assert "bravo: error: bravo's backend refused the lock" in table
    # Progress on stderr, one line per start and end; each stack's own log holds its CLI output.
    assert done.stderr.count("preview started") == 5 and "bravo: preview FAILED" in done.stderr
    assert "preview delta: done" in (tmp_path / "logs" / "delta.preview.log").read_text()
    assert "refused the lock" in (tmp_path / "logs" / "bravo.preview.log").read_text()
    # Each preview named its stack explicitly (parallel runs never rely on a selected stack).
    for call in calls(state, "preview"):
        assert call["args"][call["args"].index("--stack") + 1] == call["stack"]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def test_parallel_limits_how_many_stacks_run_at_once(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state, **{name: {"sleep": 0.6} for name in STACKS})
    done = run_fleet(fake, stacks_dir, tmp_path, "refresh", "--all", "--parallel", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    ran = calls(state, "refresh")
    assert len(ran) == 5
    assert _max_overlap([(c["start"], c["end"]) for c in ran]) == 2
    assert all("--yes" in c["args"] and "--skip-preview" in c["args"] for c in ran)


def test_one_at_a_time_runs_in_stack_order(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state, **{name: {"sleep": 0.2} for name in STACKS})
    done = run_fleet(fake, stacks_dir, tmp_path, "up", "--stack", "echo", "alpha", "charlie", "--parallel", "1",
                     "--json")
    assert done.returncode == 0, done.stderr
    ran = calls(state, "up")
    assert [c["stack"] for c in ran] == ["echo", "alpha", "charlie"]  # the order asked for
    assert _max_overlap([(c["start"], c["end"]) for c in ran]) == 1
    report = json.loads(done.stdout)
    assert [r["stack"] for r in report] == ["echo", "alpha", "charlie"] and all(r["ok"] for r in report)


def test_expect_no_changes_fails_the_drifted_stack_only(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state, charlie={"changes": {"update": 1, "same": 21}}, alpha={"changes": {"same": 22}})
    done = run_fleet(fake, stacks_dir, tmp_path, "preview", "--stack", "alpha", "charlie", "--expect-no-changes")
    assert done.returncode == 1
    assert all("--expect-no-changes" in c["args"] for c in calls(state, "preview"))
    assert "| alpha | ok |" in done.stdout and "| charlie | **failed** |" in done.stdout
    assert "no changes were expected" in done.stdout


@pytest.mark.pulumi
def test_rotate_certificate_replaces_the_certificate_by_urn(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state)
    done = run_fleet(fake, stacks_dir, tmp_path, "up", "--stack", "alpha", "bravo", "--rotate-certificate")
    assert done.returncode == 0, done.stderr
    for call in calls(state, "up"):
        args = call["args"]
        urn = args[args.index("--replace") + 1]
        # new-stack writes `protection: vault` for GCC: the certificate is the one Key Vault makes
        assert urn == (f"urn:pulumi:{call['stack']}::hr-connector::hr-connector:index:Identity"
                       "$pulumi-python:dynamic/hrconnector:VaultCertificate::identity-vault-certificate")
        # A whole-stack `up` with the certificate replaced: the credential and the secret follow in order.
        assert "--target-replace" not in args and "--target" not in args


def test_rotate_certificate_is_for_up_only(fake, stacks_dir: Path, tmp_path: Path) -> None:
    _, state = fake
    plan(state)
    done = run_fleet(fake, stacks_dir, tmp_path, "preview", "--all", "--rotate-certificate")
    # `fleet preview` has no such option (`fleet preview --help` lists preview's own)
    assert done.returncode == 2 and "unrecognized arguments: --rotate-certificate" in done.stderr


def test_a_too_old_or_missing_cli_is_a_usage_error(fake, stacks_dir: Path, tmp_path: Path) -> None:
    root, state = fake
    plan(state)
    old = provisioning("fleet", "preview", "--all", "--pulumi-root", str(root), "--stacks-dir", str(stacks_dir),
                       "--log-dir", str(tmp_path / "logs"),
                       env={"FAKE_PULUMI_DIR": str(state), "FAKE_PULUMI_VERSION": "3.150.0"})
    assert old.returncode == 2 and "3.187.0 or later" in old.stderr, old.stderr
    missing = provisioning("fleet", "preview", "--all", "--pulumi-root", str(tmp_path / "nowhere"),
                           "--stacks-dir", str(stacks_dir), "--log-dir", str(tmp_path / "logs"))
    assert missing.returncode == 2 and "no Pulumi CLI" in missing.stderr and "--pulumi-root" in missing.stderr
    assert not (state / "calls.jsonl").exists()  # nothing ran


# ------------------------------------------------------------------------------------------------------ certs


def _outputs(days: float, renew: int = 30, thumb: str = "AB" * 20) -> dict:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return {"certificateThumbprint": thumb, "certificateExpiresOn": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "certificateRenewBeforeDays": renew, "applicationId": "x"}


def test_certs_from_a_directory_of_exported_outputs(stacks_dir: Path, tmp_path: Path) -> None:
    exported = tmp_path / "outputs"
    exported.mkdir()
    (exported / "alpha.json").write_text(json.dumps(_outputs(200.5)))
    (exported / "bravo.json").write_text(json.dumps(_outputs(20.5)))  # inside renewBeforeDays: next up renews
    (exported / "charlie.json").write_text(json.dumps(_outputs(9.5, thumb="CD" * 20)))  # under --warn-days
    (exported / "delta.json").write_text(json.dumps({"applicationId": "x"}))  # outputs without the certificate
    # echo: no file — never deployed
    done = provisioning("certs", "--outputs", str(exported), "--stacks-dir", str(stacks_dir), "--json")
    assert done.returncode == 1, done.stderr
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert (rows["alpha"]["status"], rows["alpha"]["daysLeft"], rows["alpha"]["renewalDue"]) == ("ok", 200, False)
    assert (rows["bravo"]["status"], rows["bravo"]["daysLeft"], rows["bravo"]["renewalDue"]) == (
        "renewal due", 20, True)
    assert (rows["charlie"]["status"], rows["charlie"]["daysLeft"]) == ("expiring", 9)
    assert rows["charlie"]["thumbprint"] == "CD" * 20
    assert rows["delta"]["status"] == "error" and "certificateExpiresOn" in rows["delta"]["error"]
    assert rows["echo"]["status"] == "not deployed"

    table = provisioning("certs", "--outputs", str(exported), "--stacks-dir", str(stacks_dir), "--warn-days", "5")
    assert table.returncode == 1  # delta's unreadable outputs still fail
    lines = table.stdout.splitlines()
    assert lines[0].startswith("| stack | status | days left | expires (UTC)")
    order = [line.split("|")[1].strip() for line in lines[2:7]]
    assert order == ["delta", "charlie", "bravo", "alpha", "echo"]  # most urgent first
    assert "| charlie | renewal due | 9 |" in table.stdout  # 9 days is not under --warn-days 5


def test_certs_exit_zero_when_all_are_fine(stacks_dir: Path, tmp_path: Path) -> None:
    exported = tmp_path / "all.json"
    exported.write_text(json.dumps({"alpha": _outputs(100.5), "bravo": _outputs(300.5)}))
    done = provisioning("certs", "--outputs", str(exported), "--stack", "alpha", "bravo",
                        "--stacks-dir", str(stacks_dir), "--warn-days", "14")
    assert done.returncode == 0, done.stdout
    assert "2 stack(s): 0 under 14 days" in done.stdout


def test_certs_from_the_pulumi_cli(fake, stacks_dir: Path) -> None:
    root, state = fake
    plan(state, alpha={"outputs": _outputs(3.5)}, bravo={"outputs": _outputs(90.5)}, charlie={"outputs": {}})
    (state / "plan.json").write_text(json.dumps({k: v for k, v in json.loads((state / "plan.json").read_text())
                                                 .items() if k != "delta"}))  # delta: the CLI knows no such stack
    done = provisioning("certs", "--pulumi-root", str(root), "--stacks-dir", str(stacks_dir), "--json",
                        env={"FAKE_PULUMI_DIR": str(state)})
    assert done.returncode == 1
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert (rows["alpha"]["status"], rows["alpha"]["daysLeft"]) == ("expiring", 3)
    assert rows["bravo"]["status"] == "ok" and rows["charlie"]["status"] == "not deployed"
    assert rows["delta"]["status"] == "error" and "no stack named" in rows["delta"]["error"]
    asked = calls(state, "stack output")
    assert asked and all("--show-secrets" not in c["args"] for c in asked)  # secrets are never asked for


def test_certs_shows_where_each_stacks_key_lives(stacks_dir: Path, tmp_path: Path) -> None:
    """`certificateProtection` per stack; a stack deployed before the output existed is exportable."""
    exported = tmp_path / "all.json"
    exported.write_text(json.dumps({"alpha": {**_outputs(100.5), "certificateProtection": "vault"},
                                    "bravo": {**_outputs(300.5), "certificateProtection": "hsm"},
                                    "charlie": _outputs(200.5)}))
    done = provisioning("certs", "--outputs", str(exported), "--stack", "alpha", "bravo", "charlie",
                        "--stacks-dir", str(stacks_dir), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["stack"]: r["protection"] for r in json.loads(done.stdout)}
    assert rows == {"alpha": "vault", "bravo": "hsm", "charlie": "exportable"}
    table = provisioning("certs", "--outputs", str(exported), "--stack", "alpha", "bravo", "charlie",
                         "--stacks-dir", str(stacks_dir))
    assert table.stdout.splitlines()[0].endswith("| key |") and "| hsm |" in table.stdout
