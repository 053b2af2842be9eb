"""The Key Vault-made certificate (provisioning/components/vaultcert.py, issue 14): its create against the
in-memory Key Vault stand-in, idempotent after a crash, renewal create-before-delete with the job moving to the new
versioned key, the old version disabled; the deployer's token chosen explicitly; validity in whole months."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from provisioning.components import vaultcert
from provisioning.components.vaultcert import (
    MemoryVault,
    RestVault,
    VaultCallError,
    VaultCertificateProvider,
    check_vault_uri,
    deployer_credential,
    github_oidc_token,
)
from provisioning.config import ConfigError, load_settings, validity_months

VAULT_URI = "https://kv-test.vault.azure.net/"
PROPS = {"vaultUri": VAULT_URI, "certificateName": "uploader-signer", "commonName": "hr-uploader-test",
         "validityDays": 365, "renewBeforeDays": 30, "keyType": "RSA", "keySize": 2048,
         "azureEnvironment": "public"}
DAY = dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)


class RecordingVault(MemoryVault):
    """The stand-in, remembering every create body it was sent."""

    def __init__(self, polls: int = 1) -> None:
        super().__init__(VAULT_URI, polls)
        self.bodies: list[dict[str, Any]] = []

    def create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(json.loads(json.dumps(body)))
        return super().create(name, body)


def provider(vault: MemoryVault, now: dt.datetime = DAY) -> VaultCertificateProvider:
    return VaultCertificateProvider(client=lambda _props: vault, now=lambda: now, sleep=lambda _s: None)


def test_create_asks_key_vault_for_a_non_exportable_self_signed_certificate_without_auto_renew() -> None:
    vault = RecordingVault()
    outs = provider(vault).create(dict(PROPS)).outs or {}
    (body,) = vault.bodies
    policy = body["policy"]
    assert policy["key_props"] == {"exportable": False, "kty": "RSA", "key_size": 2048, "reuse_key": False}
    assert policy["issuer"] == {"name": "Self"}
    assert policy["x509_props"]["validity_months"] == 12 and policy["x509_props"]["key_usage"] == ["digitalSignature"]
    assert [a["action"]["action_type"] for a in policy["lifetime_actions"]] == ["EmailContacts"]
    assert body["tags"][vaultcert.REQUEST_TAG] == outs["requestTag"]
    assert body["tags"][vaultcert.OWNER_TAG] == outs["owner"] and len(outs["owner"]) == 32
    # state: public values only
    assert set(outs) - set(PROPS) == {"keyId", "certificateId", "version", "certificatePem", "thumbprintSha1",
                                      "thumbprintSha256", "notBefore", "notAfter", "requestTag", "owner"}
    assert "PRIVATE KEY" not in json.dumps(outs)
    assert outs["keyId"] == f"{VAULT_URI}keys/uploader-signer/{outs['version']}"
    assert outs["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert len(outs["thumbprintSha1"]) == 40 and len(outs["thumbprintSha256"]) == 64


def test_hsm_asks_for_an_hsm_key() -> None:
    vault = RecordingVault()
    provider(vault).create(dict(PROPS, keyType="RSA-HSM"))
    assert vault.bodies[0]["policy"]["key_props"]["kty"] == "RSA-HSM"


def test_a_create_rerun_after_a_crash_adopts_the_operation_still_in_progress_and_claims_it() -> None:
    """The first create's process died after Key Vault accepted the request (nothing reached Pulumi state)."""
    vault = RecordingVault(polls=3)
    tag = vaultcert.request_tag(PROPS)
    vault.create("uploader-signer", vaultcert.create_body(dict(PROPS), tag, "crashed-run"))  # what the crashed run sent
    outs = provider(vault, DAY + dt.timedelta(minutes=5)).create(dict(PROPS)).outs or {}
    assert vault.creates == 1, "the re-run waited for the pending operation and adopted its version"
    (only,) = vault.versions("uploader-signer")
    assert outs["version"] == only["id"].rsplit("/", 1)[1]
    assert only["tags"][vaultcert.OWNER_TAG] == outs["owner"] != "crashed-run", "the adopter claimed the version"
    # A completed version is never adopted: the next create makes a new key, whatever the day.
    again = provider(vault, DAY + dt.timedelta(hours=2)).create(dict(PROPS)).outs or {}
    assert again["keyId"] != outs["keyId"] and vault.creates == 2


def test_an_operation_in_progress_with_other_inputs_is_not_adopted() -> None:
    vault = RecordingVault(polls=3)
    other = dict(PROPS, commonName="someone-else")
    vault.create("uploader-signer", vaultcert.create_body(other, vaultcert.request_tag(other), "x"))
    outs = provider(vault).create(dict(PROPS)).outs or {}
    assert vault.creates == 2 and outs["requestTag"] == vaultcert.request_tag(PROPS)


def test_a_same_day_replace_makes_a_new_key_and_deleting_the_old_leaves_it_signing() -> None:
    """Issue 24, item 1: `pulumi up --replace` (fleet up --rotate-certificate, the rotate workflow) on the day the
    certificate was made. The engine creates the replacement, then deletes the replaced resource."""
    vault = RecordingVault()
    old = provider(vault).create(dict(PROPS)).outs or {}
    new = provider(vault, DAY + dt.timedelta(minutes=30)).create(dict(PROPS)).outs or {}  # same inputs, same day
    assert new["version"] != old["version"] and new["keyId"] != old["keyId"], "a rotation makes a new key"
    assert new["owner"] != old["owner"]
    provider(vault, DAY + dt.timedelta(minutes=31)).delete("id", old)
    assert vault.can_sign("uploader-signer", new["version"]), "the live version still signs"
    (live,) = [v for v in vault.versions("uploader-signer") if v["id"].endswith(new["version"])]
    assert live["attributes"]["enabled"] is True
    assert not vault.can_sign("uploader-signer", old["version"]), "the replaced version no longer signs"


def test_a_delete_never_disables_a_version_another_resource_claimed() -> None:
    """The owner tag decides: a version whose owner nonce is no longer the deleted resource's is left enabled
    (a crash re-run that adopted an operation stamps its own nonce; see the test above)."""
    vault = RecordingVault(polls=3)
    tag = vaultcert.request_tag(PROPS)
    vault.create("uploader-signer", vaultcert.create_body(dict(PROPS), tag, "first-attempt"))
    crashed = {**PROPS, "version": "", "owner": "first-attempt"}
    adopter = provider(vault).create(dict(PROPS)).outs or {}
    provider(vault).delete("id", {**crashed, "version": adopter["version"]})  # a stale record naming the version
    assert vault.can_sign("uploader-signer", adopter["version"])
    provider(vault).delete("id", adopter)
    assert not vault.can_sign("uploader-signer", adopter["version"])
    provider(vault).delete("id", adopter)  # again (already disabled) and for a version that no longer exists
    provider(vault).delete("id", {**adopter, "version": "0" * 32})


def test_every_create_without_an_operation_in_progress_makes_a_new_version() -> None:
    vault = RecordingVault()
    first = provider(vault).create(dict(PROPS)).outs or {}
    later = provider(vault, DAY + dt.timedelta(days=340)).create(dict(PROPS)).outs or {}
    other = provider(vault, DAY + dt.timedelta(days=340)).create(dict(PROPS, commonName="other")).outs or {}
    assert len({first["keyId"], later["keyId"], other["keyId"]}) == 3 and vault.creates == 3


def test_a_failed_operation_is_an_error_naming_it() -> None:
    class Failing(MemoryVault):
        def pending(self, name: str) -> dict[str, Any] | None:
            if name in self._pending:
                return {"status": "failed", "error": {"code": "Forbidden", "message": "denied by policy"}}
            return None

    with pytest.raises(VaultCallError, match="failed Forbidden denied by policy"):
        provider(Failing(VAULT_URI)).create(dict(PROPS))


def test_renewal_replaces_create_before_delete_and_disables_the_old_version() -> None:
    vault = RecordingVault()
    old = provider(vault).create(dict(PROPS)).outs or {}
    not_after = dt.datetime.fromisoformat(old["notAfter"].replace("Z", "+00:00"))
    fresh = provider(vault, not_after - dt.timedelta(days=31)).diff("id", old, dict(PROPS))
    assert fresh.replaces == [] and not fresh.changes
    due = provider(vault, not_after - dt.timedelta(days=29))
    result = due.diff("id", old, dict(PROPS))
    assert result.replaces == ["notAfter"] and result.delete_before_replace is False
    new = due.create(dict(PROPS)).outs or {}  # the engine: create the replacement first ...
    assert new["keyId"] != old["keyId"] and new["thumbprintSha1"] != old["thumbprintSha1"]
    assert vault.can_sign("uploader-signer", old["version"]) and vault.can_sign("uploader-signer", new["version"])
    due.delete("id", old)  # ... and delete the replaced one at the end of the `up`
    assert not vault.can_sign("uploader-signer", old["version"])
    assert vault.can_sign("uploader-signer", new["version"])


@pytest.mark.parametrize("key", ["keyType", "validityDays", "commonName", "vaultUri"])
def test_changing_the_key_type_validity_subject_or_vault_replaces(key: str) -> None:
    vault = RecordingVault()
    old = provider(vault).create(dict(PROPS)).outs or {}
    changed = {"keyType": "RSA-HSM", "validityDays": 730, "commonName": "x",
               "vaultUri": "https://kv-other.vault.azure.net/"}[key]
    assert provider(vault).diff("id", old, dict(PROPS, **{key: changed})).replaces == [key]


def test_check_refuses_validity_key_vault_cannot_honour() -> None:
    check = VaultCertificateProvider().check
    assert check({}, dict(PROPS)).failures == []
    assert [f.property for f in check({}, dict(PROPS, validityDays=100)).failures] == ["validityDays"]
    assert [f.property for f in check({}, dict(PROPS, keyType="EC")).failures] == ["keyType"]
    assert [f.property for f in check({}, dict(PROPS, keySize=1024)).failures] == ["keySize"]


@pytest.mark.parametrize(("days", "months"), [(365, 12), (180, 6), (730, 24), (30, 1), (91, 3), (3650, 120),
                                              (100, None), (14, None), (45, None)])
def test_validity_days_to_whole_months(days: int, months: int | None) -> None:
    assert validity_months(days) == months


def _config(**certificate: Any) -> dict[str, Any]:
    return {"hr-connector:cloud": "commercial", "hr-connector:tenantId": "9b2c7d4e-5f60-4718-8a9b-0c1d2e3f4a5b",
            "hr-connector:location": "eastus", "hr-connector:certificate": certificate}


def test_config_protection_default_and_rules() -> None:
    assert load_settings(_config(validityDays=365)).certificate.protection == "exportable"
    assert not load_settings(_config(validityDays=365)).certificate.protection_set
    assert load_settings(_config(protection="hsm")).certificate.in_vault
    with pytest.raises(ConfigError) as bad:
        load_settings(_config(protection="cloud"))
    assert "certificate.protection" in str(bad.value)
    with pytest.raises(ConfigError) as months:
        load_settings(_config(protection="vault", validityDays=100, renewBeforeDays=20))
    assert "whole months" in str(months.value) and "91 (3 months)" in str(months.value)
    assert load_settings(_config(protection="exportable", validityDays=100, renewBeforeDays=20))


def test_the_provider_survives_pulumi_serialisation() -> None:
    import base64

    import dill  # type: ignore[import-untyped]
    from pulumi.dynamic.dynamic import serialize_provider

    restored = dill.loads(base64.b64decode(serialize_provider(VaultCertificateProvider())))  # noqa: S301
    assert restored.check({}, dict(PROPS)).failures == []


# -- the deployer's token and where it may go ------------------------------------------------------------------

def test_the_token_goes_only_to_the_stacks_key_vault_domain() -> None:
    assert check_vault_uri("https://kv1.vault.usgovcloudapi.net/", "usgovernment") == "https://kv1.vault.usgovcloudapi.net"
    for uri, env in (("https://kv1.vault.azure.net/", "usgovernment"), ("http://kv1.vault.azure.net/", "public"),
                     ("https://kv1.vault.azure.net.evil.test/", "public")):
        with pytest.raises(VaultCallError):
            check_vault_uri(uri, env)


def test_az_cli_locally_and_a_fresh_github_oidc_token_per_request_in_workflows(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import AzureCliCredential, ClientAssertionCredential

    assert isinstance(deployer_credential("public", {}), AzureCliCredential)
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.actions.example/x?api=1",
           "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token", "ARM_CLIENT_ID": "c", "ARM_TENANT_ID": "t"}
    assert isinstance(deployer_credential("usgovernment", env), ClientAssertionCredential)

    asked: list[str] = []

    class Answer:
        status_code = 200

        def json(self) -> dict[str, str]:
            return {"value": f"oidc-{len(asked)}"}

    def fake_get(url: str, **_kwargs: Any) -> Answer:
        asked.append(url)
        return Answer()

    monkeypatch.setattr("requests.get", fake_get)
    fetch = github_oidc_token(env["ACTIONS_ID_TOKEN_REQUEST_URL"], "request-token", "api://AzureADTokenExchangeUSGov")
    assert (fetch(), fetch()) == ("oidc-1", "oidc-2")  # a fresh token every time it is asked
    assert asked[0].endswith("&audience=api%3A%2F%2FAzureADTokenExchangeUSGov")


def test_rest_vault_calls_the_documented_operations() -> None:
    """RestVault's requests (method, path, api-version, bearer) answered by the in-memory stand-in."""
    memory = MemoryVault(VAULT_URI)
    seen: list[tuple[str, str, str]] = []

    class Token:
        token = "deployer-token"

    class Credential:
        def get_token(self, scope: str) -> Token:
            assert scope == "https://vault.azure.net/.default"
            return Token()

    class Answer:
        def __init__(self, status: int, body: Any) -> None:
            self.status_code, self._body = status, body
            self.content = b"{}" if body is not None else b""

        def json(self) -> Any:
            return self._body

    class Session:
        def request(self, method: str, url: str, params: Any = None, json: Any = None, headers: Any = None,
                    **_kw: Any) -> Answer:
            assert headers["Authorization"] == "Bearer deployer-token" and params == {"api-version": "7.5"}
            path = url.removeprefix("https://kv-test.vault.azure.net")
            seen.append((method, path, params["api-version"]))
            parts = path.strip("/").split("/")
            if method == "POST" and parts[2:] == ["create"]:
                return Answer(202, memory.create(parts[1], json))
            if method == "GET" and parts[2:] == ["pending"]:
                found = memory.pending(parts[1])
                return Answer(200, found) if found else Answer(404, {"error": {"code": "PendingCertificateNotFound"}})
            if method == "GET" and parts[2:] == ["versions"]:
                return Answer(200, {"value": memory.versions(parts[1]), "nextLink": None})
            if method == "GET":
                return Answer(200, memory.get(parts[1], parts[2] if len(parts) > 2 else ""))
            if method == "PATCH":
                return Answer(200, memory.update(parts[1], parts[2], json))
            return Answer(400, None)

    rest = RestVault(VAULT_URI, "public", credential=Credential(), session=Session())
    outs = VaultCertificateProvider(client=lambda _p: rest, now=lambda: DAY, sleep=lambda _s: None).create(
        dict(PROPS)).outs or {}
    assert ("POST", "/certificates/uploader-signer/create", "7.5") in seen
    assert ("GET", "/certificates/uploader-signer/pending", "7.5") in seen
    VaultCertificateProvider(client=lambda _p: rest).delete("id", outs)
    assert seen[-1] == ("PATCH", f"/certificates/uploader-signer/{outs['version']}", "7.5")
    assert not memory.can_sign("uploader-signer", outs["version"])
