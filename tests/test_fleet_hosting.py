"""The fleet tools and hosting stacks (issue 15): selection, batches past GitHub's 256-job matrix, hosting stacks
before their tenants in `fleet`, `check` naming mismatches offline, `certs` across hosting stacks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from stack_examples import example_stacks

from provisioning.tools import fleet

REPO = Path(__file__).resolve().parent.parent
TENANT = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#: the hosting subscription's directory (the hosted tenants' Azure side)
PLATFORM = "9f1c2a3b-4d5e-4f60-8a7b-8c9d0e1f2a3b"


def hosting(directory: Path, name: str, cloud: str = "commercial", location: str = "eastus") -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(f"config:\n  hr-connector:hosting: true\n  hr-connector:cloud: {cloud}\n"
                    f"  hr-connector:location: {location}\n  hr-connector:alertEmails: [ops@contoso.example]\n"
                    f"  hr-connector:azureTenantId: {PLATFORM}\n",
                    encoding="utf-8")
    return path


def tenant(directory: Path, name: str, hosted_by: str | None, cloud: str = "commercial",
           location: str = "eastus") -> Path:
    path = directory / f"Pulumi.{name}.yaml"
    host = f"  hr-connector:hostedBy: {hosted_by}\n" if hosted_by else ""
    path.write_text(f"config:\n  hr-connector:tenantId: {uuid.uuid4()}\n  hr-connector:cloud: {cloud}\n"
                    f"  hr-connector:location: {location}\n{host}", encoding="utf-8")
    return path


def provisioning(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------------------------------ selection


def test_a_change_to_a_hosting_stack_selects_it_and_every_tenant_it_hosts(tmp_path: Path) -> None:
    hosting(tmp_path, "hub-a")
    hosting(tmp_path, "hub-b")
    for name, host in (("t1", "hub-a"), ("t2", "hub-b"), ("t3", "hub-a"), ("solo", None)):
        tenant(tmp_path, name, host)
    picked = fleet.changed_stacks(["stacks/Pulumi.hub-a.yaml"], tmp_path)
    assert [p.name for p in picked] == ["Pulumi.hub-a.yaml", "Pulumi.t1.yaml", "Pulumi.t3.yaml"]
    # a tenant's own change selects that tenant only
    assert [p.name for p in fleet.changed_stacks(["stacks/Pulumi.t2.yaml"], tmp_path)] == ["Pulumi.t2.yaml"]
    # through the command line, hosting stacks first
    changed = tmp_path / "changed.txt"
    changed.write_text("stacks/Pulumi.t2.yaml\nstacks/Pulumi.hub-b.yaml\n", encoding="utf-8")
    done = provisioning("matrix", "--changed-files", str(changed), "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)["include"]
    assert [(e["stack"], e["hosting"], e["hostedBy"]) for e in entries] == [("hub-b", True, ""),
                                                                          ("t2", False, "hub-b")]


def test_a_plan_for_600_stacks_runs_as_batches_of_at_most_256(tmp_path: Path) -> None:
    hubs = ["hub-east", "hub-west", "hub-gov"]
    for hub in hubs:
        hosting(tmp_path, hub, *(("gcchigh", "usgovvirginia") if hub == "hub-gov" else ()))
    for i in range(597):
        hub = hubs[i % 3] if i % 5 else None
        gov = hub == "hub-gov"
        tenant(tmp_path, f"tenant-{i:03d}", hub, "gcchigh" if gov else "commercial",
               "usgovvirginia" if gov else "eastus")
    paths = fleet.select_stacks(tmp_path, None)
    assert len(paths) == 600
    planned = fleet.plan(paths)
    batches = [b["include"] for b in planned["batches"]]
    stacks = [e["stack"] for b in batches for e in b]
    assert planned["count"] == 600 and len(stacks) == 600 and len(set(stacks)) == 600  # every stack exactly once
    assert all(0 < len(b) <= 256 for b in batches) and len(batches) <= fleet.MAX_BATCHES
    where = {e["stack"]: i for i, b in enumerate(batches) for e in b}
    for b in batches:
        for e in b:
            if e["hostedBy"]:
                assert where[e["hostedBy"]] < where[e["stack"]], e["stack"]  # its hosting stack's batch ran first
    assert {e["stack"] for e in batches[0]} == set(hubs)
    # through the command line, as the workflows call it
    done = provisioning("matrix", "--all", "--batches", "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == planned


def test_more_stacks_than_the_workflows_batches_is_a_clear_error(tmp_path: Path) -> None:
    paths = [tenant(tmp_path, f"t{i}", None) for i in range(7)]
    with pytest.raises(fleet.FleetError, match="batches"):
        fleet.plan(paths, batch_size=2, max_batches=3)


# ------------------------------------------------------------------------------------------------ check, offline


def test_check_names_the_mismatches_and_a_missing_hosting_stack(tmp_path: Path) -> None:
    hosting(tmp_path, "hub-east")
    tenant(tmp_path, "ok-tenant", "hub-east")
    tenant(tmp_path, "high", "hub-east", "gcchigh", "usgovvirginia")
    tenant(tmp_path, "west", "hub-east", location="westeurope")
    tenant(tmp_path, "lost", "hub-nowhere")
    done = provisioning("check", "--stacks-dir", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout
    assert "ok    hub-east:" in out and "ok    ok-tenant:" in out
    assert "FAIL  high: hr-connector:cloud: a gcchigh tenant runs in Azure usgovernment, but hosting stack " \
           "hub-east is in Azure public" in out
    assert "FAIL  west: hr-connector:location: is westeurope, but hosting stack hub-east is in eastus" in out
    assert "FAIL  lost: hr-connector:hostedBy: hosting stack 'hub-nowhere' does not exist" in out


def test_render_of_a_hosted_tenant_works_offline_from_the_hosting_stack_file(tmp_path: Path) -> None:
    hosting(tmp_path, "hub-east")
    tenant(tmp_path, "acme", "hub-east")
    done = provisioning("render", "--stack", "acme", "--json", "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    types = [r["type"] for r in report["resources"]]
    assert "azure-native:app:Job" in types
    assert not {"azure-native:app:ManagedEnvironment", "azure-native:operationalinsights:Workspace",
                "azure-native:containerregistry:Registry"} & set(types)


# ------------------------------------------------------------------------------------------------ fleet, certs


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    root, state = tmp_path / "pulumi", tmp_path / "state"
    (root / "bin").mkdir(parents=True)
    state.mkdir()
    exe = root / "bin" / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fake_pulumi.py"}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return root, state


def test_fleet_up_runs_hosting_stacks_before_their_tenants(fake: tuple[Path, Path], tmp_path: Path) -> None:
    root, state = fake
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    names = ["alpha", "bravo", "charlie", "delta"]
    for name in names:
        tenant(stacks, name, "hub-b" if name in ("alpha", "delta") else "hub-a")
    hosting(stacks, "hub-a")
    hosting(stacks, "hub-b")
    (state / "plan.json").write_text(json.dumps({n: {"sleep": 0.3} for n in [*names, "hub-a", "hub-b"]}))
    done = provisioning("fleet", "up", "--all", "--parallel", "4", "--pulumi-root", str(root), "--stacks-dir",
                        str(stacks), "--log-dir", str(tmp_path / "logs"), "--json",
                        env={"FAKE_PULUMI_DIR": str(state)})
    assert done.returncode == 0, done.stdout + done.stderr
    ran = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    ups = [c for c in ran if c["command"] == "up"]
    hosting_end = max(c["end"] for c in ups if c["stack"].startswith("hub-"))
    tenant_start = min(c["start"] for c in ups if not c["stack"].startswith("hub-"))
    assert hosting_end <= tenant_start
    assert len(ups) == 6


def test_certs_lists_tenants_most_urgent_first_across_hosting_stacks(tmp_path: Path) -> None:
    hosting(tmp_path, "hub-east")
    tenant(tmp_path, "acme", "hub-east")
    tenant(tmp_path, "solo", None)
    tenant(tmp_path, "beta", "hub-east")
    exported = tmp_path / "outputs.json"
    expiry = {"acme": "2098-01-01T00:00:00Z", "solo": "2097-01-01T00:00:00Z", "beta": "2099-01-01T00:00:00Z"}
    exported.write_text(json.dumps({name: {"certificateThumbprint": "AB" * 20, "certificateExpiresOn": expires,
                                           "certificateRenewBeforeDays": 30} for name, expires in expiry.items()}))
    done = provisioning("certs", "--outputs", str(exported), "--stacks-dir", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["stack"]: r for r in json.loads(done.stdout)}
    assert set(rows) == {"acme", "solo", "beta"}  # the hosting stack has no certificate
    assert rows["acme"]["hostedBy"] == "hub-east" and rows["solo"]["hostedBy"] == ""
    table = provisioning("certs", "--outputs", str(exported), "--stacks-dir", str(tmp_path)).stdout
    rows_shown = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table.splitlines()[2:5]]
    # the soonest expiry first, whichever hosting stack runs the job; the `hosted by` column says which
    assert [(r[0], r[6]) for r in rows_shown] == [("solo", "-"), ("acme", "hub-east"), ("beta", "hub-east")]


# ------------------------------------------------------------------------------------------------ the evaluator


def test_the_worker_pool_evaluates_like_a_process_per_stack(tmp_path: Path) -> None:
    """evaluator.evaluate_many (a few worker processes, many stacks each) declares exactly what a process per
    stack (offline.evaluate) declares; only the generated certificate (a new key each evaluation) differs."""
    import re

    from provisioning.tools.evaluator import evaluate_many
    from provisioning.tools.offline import Evaluation, evaluate

    hosting(tmp_path, "hub-east")
    tenant(tmp_path, "acme", "hub-east")
    # the richest example (GCC High: private, hsm, Azure Government), a hosting stack and its tenant
    paths = [next(p for p in example_stacks() if "gcchigh" in p.name), tmp_path / "Pulumi.hub-east.yaml",
             tmp_path / "Pulumi.acme.yaml"]

    def graph(ev: Evaluation) -> str:
        text = json.dumps(sorted([(r.type, r.urn, r.inputs, r.parent, sorted(r.depends_on)) for r in ev.resources],
                                 key=str), sort_keys=True, default=str)
        text = re.sub(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", "PEM", text)  # a new certificate each time
        text = re.sub(r'"expires": [\d.]+', '"expires": X', text)  # a retired secret expires with the new certificate
        return re.sub(r"\[secret:[0-9a-f]+\]|[0-9a-f]{32}|\d{4}-\d\d-\d\dT[\d:]+Z|[0-9A-F]{40}", "X", text)

    pooled = evaluate_many(paths, workers=2)
    for path in paths:
        outcome = pooled[path]
        assert isinstance(outcome, Evaluation), (path, outcome)
        assert graph(outcome) == graph(evaluate(path)), path.name


def test_a_hosting_stack_renders_and_checks_alone(tmp_path: Path) -> None:
    hosting(tmp_path, "hub-east")
    done = provisioning("render", "--stack", "hub-east", "--stacks-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "azure-native:app:ManagedEnvironment" in done.stdout and "azuread" not in done.stdout
    done = provisioning("check", "--stacks-dir", str(tmp_path))
    assert done.returncode == 0 and "ok    hub-east:" in done.stdout, done.stdout + done.stderr
