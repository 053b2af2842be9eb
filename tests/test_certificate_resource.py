"""The certificate dynamic provider: create makes a usable key once; diff renews inside the window, with overlap."""

from __future__ import annotations

import datetime as dt

import pytest

from provisioning.components.certificate import CertificateProvider, parse_iso, renewal_due
from uploader.model.certs import load_bundle

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
PROPS = {"commonName": "hr-connector-test", "validityDays": 365, "renewBeforeDays": 30}


def clock(moment: dt.datetime) -> CertificateProvider:
    return CertificateProvider(now=lambda: moment)


@pytest.fixture(scope="module")
def created() -> dict:
    result = clock(T0).create(dict(PROPS))
    assert result.outs is not None
    return {"id": result.id, **result.outs}


def test_create_makes_a_key_and_a_matching_certificate(created: dict) -> None:
    bundle = load_bundle(created["pem"], source="state")  # key + certificate that belong together, RSA
    assert bundle.thumbprint_sha1 == created["thumbprintSha1"] == created["id"]
    assert bundle.thumbprint_sha256 == created["thumbprintSha256"]
    assert created["certificatePem"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in created["certificatePem"]  # what the app registration gets: public part only
    assert parse_iso(created["notAfter"]) == T0 + dt.timedelta(days=365)
    assert parse_iso(created["notBefore"]) <= T0
    assert created["validityDays"] == 365 and created["renewBeforeDays"] == 30


def test_two_creates_never_share_a_key() -> None:
    a = clock(T0).create(dict(PROPS, validityDays=2, renewBeforeDays=1)).outs
    b = clock(T0).create(dict(PROPS, validityDays=2, renewBeforeDays=1)).outs
    assert a and b and a["thumbprintSha256"] != b["thumbprintSha256"]


@pytest.mark.parametrize(("days_left", "renews"), [
    (60, False),
    (31, False),
    (30.0001, False),  # a moment before the window opens
    (30, True),  # exactly renewBeforeDays before expiry: inside the window
    (29, True),
    (1, True),
    (-3, True),  # already expired: renew at once
])
def test_diff_at_the_window_edges(created: dict, days_left: float, renews: bool) -> None:
    now = parse_iso(created["notAfter"]) - dt.timedelta(days=days_left)
    diff = clock(now).diff(created["id"], created, dict(PROPS))
    assert bool(diff.changes) is renews
    assert ("notAfter" in (diff.replaces or [])) is renews
    # Replacement is always create-before-delete: the new credential exists before the old one goes.
    assert diff.delete_before_replace is False


def test_renewal_follows_renew_before_days_from_the_new_inputs(created: dict) -> None:
    now = parse_iso(created["notAfter"]) - dt.timedelta(days=45)
    assert not clock(now).diff(created["id"], created, dict(PROPS)).changes
    diff = clock(now).diff(created["id"], created, dict(PROPS, renewBeforeDays=60))
    assert "notAfter" in (diff.replaces or [])


def test_changing_renew_before_days_alone_updates_in_place(created: dict) -> None:
    diff = clock(T0).diff(created["id"], created, dict(PROPS, renewBeforeDays=45))
    assert diff.changes and not diff.replaces
    outs = clock(T0).update(created["id"], created, dict(PROPS, renewBeforeDays=45)).outs
    assert outs is not None and outs["renewBeforeDays"] == 45
    assert outs["pem"] == created["pem"]  # same key: no renewal


@pytest.mark.parametrize("key", ["commonName", "validityDays"])
def test_changing_subject_or_validity_replaces(created: dict, key: str) -> None:
    changed = dict(PROPS, **{key: "other" if key == "commonName" else 180})
    diff = clock(T0).diff(created["id"], created, changed)
    assert key in (diff.replaces or []) and diff.delete_before_replace is False


def test_a_fresh_certificate_is_left_alone(created: dict) -> None:
    diff = clock(T0 + dt.timedelta(days=1)).diff(created["id"], created, dict(PROPS))
    assert not diff.changes and not diff.replaces


def test_renewal_due_boundary() -> None:
    expiry = T0 + dt.timedelta(days=100)
    assert not renewal_due(expiry, 30, expiry - dt.timedelta(days=30, seconds=1))
    assert renewal_due(expiry, 30, expiry - dt.timedelta(days=30))


@pytest.mark.parametrize(("props", "field"), [
    ({**PROPS, "commonName": ""}, "commonName"),
    ({**PROPS, "validityDays": 1}, "validityDays"),
    ({**PROPS, "renewBeforeDays": 365}, "renewBeforeDays"),
    ({**PROPS, "renewBeforeDays": 0}, "renewBeforeDays"),
])
def test_check_refuses_nonsense(props: dict, field: str) -> None:
    failures = CertificateProvider().check({}, props).failures
    assert [f.property for f in failures] == [field]


def test_check_accepts_the_defaults() -> None:
    assert CertificateProvider().check({}, dict(PROPS)).failures == []


def test_the_provider_survives_pulumi_serialisation() -> None:
    """`pulumi up` pickles the provider into state and runs it in the dynamic-provider host."""
    import base64

    import dill
    from pulumi.dynamic.dynamic import serialize_provider

    provider = dill.loads(base64.b64decode(serialize_provider(CertificateProvider())))  # noqa: S301 - our own bytes
    outs = provider.create(dict(PROPS, validityDays=2, renewBeforeDays=1)).outs
    assert outs and outs["thumbprintSha1"]
