"""Refresh the vendored Azure Policy definitions in provisioning/policies/ from a checkout of Azure/azure-policy.

    python -m provisioning.tools.policyvendor /path/to/azure-policy [--commit SHA]

Takes the three initiatives `check --policy` knows (INITIATIVES), keeps each member whose definition lets its
effect be Deny and whose rule names a resource type the program declares (TYPES), copies those definitions
verbatim (Microsoft's files, MIT licence: provisioning/policies/LICENSE), and writes initiatives.json: per
initiative its ID, display name and source file, and per kept member the definition's ID, display name, file and
the parameter values the initiative passes (its own defaults resolved). Run by a maintainer, reviewed as a diff;
nothing here runs at check time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "policies"
INITIATIVES = {
    "fedramp-high": "built-in-policies/policySetDefinitions/Regulatory Compliance/FedRAMP_H_audit.json",
    "il5": "built-in-policies/policySetDefinitions/Azure Government/Regulatory Compliance/DOD_IL5_audit.json",
    "mcsb": "built-in-policies/policySetDefinitions/Security Center/AzureSecurityCenter.json",
}
#: ARM types the program declares (and the Key Vault data-plane type its secret is evaluated as).
TYPES = ("Microsoft.KeyVault/vaults", "Microsoft.KeyVault.Data/vaults/secrets", "Microsoft.Storage/storageAccounts",
         "Microsoft.ContainerRegistry/registries", "Microsoft.OperationalInsights/workspaces",
         "Microsoft.App/managedEnvironments", "Microsoft.App/jobs")
_PARAM = re.compile(r"^\[parameters\('([^']+)'\)\]$")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8-sig"))
    return data


def vendor(repo: Path, commit: str) -> None:
    definitions = repo / "built-in-policies" / "policyDefinitions"
    index: dict[str, Path] = {}
    for path in definitions.rglob("*.json"):
        try:
            data = _load(path)
        except ValueError:
            continue
        if isinstance(data.get("name"), str):
            index[data["name"].lower()] = path
    shutil.rmtree(OUT / "definitions", ignore_errors=True)
    summary: dict[str, Any] = {"source": "https://github.com/Azure/azure-policy", "commit": commit, "initiatives": {}}
    for key, relative in INITIATIVES.items():
        initiative = _load(repo / relative)
        props = initiative["properties"]
        members = []
        for member in props["policyDefinitions"]:
            pid = member["policyDefinitionId"].rsplit("/", 1)[-1].lower()
            found = index.get(pid)
            if found is None:
                continue
            path = found
            definition = _load(path)["properties"]
            # the parameter the rule's `then.effect` names (usually `effect`; some definitions use another)
            then = _PARAM.match(str(definition["policyRule"]["then"].get("effect", "")))
            effect = (definition.get("parameters") or {}).get(then[1] if then else "effect") or {}
            if "deny" not in [str(v).lower() for v in effect.get("allowedValues", [])]:
                continue
            rule = json.dumps(definition["policyRule"]["if"]).lower()
            if not any(f'"{t.lower()}"' in rule for t in TYPES):
                continue
            passed = {}
            for name, value in (member.get("parameters") or {}).items():
                text = value.get("value")
                ref = _PARAM.match(text) if isinstance(text, str) else None
                passed[name] = (props["parameters"].get(ref[1], {}).get("defaultValue") if ref else text)
            target = OUT / "definitions" / path.relative_to(definitions)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            members.append({"id": pid, "displayName": definition["displayName"],
                            "file": str(path.relative_to(definitions)), "parameters": passed})
        summary["initiatives"][key] = {"id": initiative["name"], "displayName": props["displayName"],
                                       "file": relative, "members": members}
    (OUT / "initiatives.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a checkout of https://github.com/Azure/azure-policy")
    parser.add_argument("--commit", help="the checkout's commit (default: git rev-parse HEAD in it)")
    args = parser.parse_args(argv)
    commit = args.commit or subprocess.run(["git", "-C", str(args.repo), "rev-parse", "HEAD"], check=True,
                                           capture_output=True, text=True).stdout.strip()
    vendor(args.repo, commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
