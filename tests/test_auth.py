"""TokenProvider: real MSAL against the sandbox's Entra stand-in, in process (the session trusts the sandbox CA)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs

import jwt
import pytest
import requests
from cryptography import x509

from uploader.clouds import CLOUDS, get_cloud
from uploader.errors import EXIT_FAILED, EXIT_USAGE, SignInError, UsageError
from uploader.send.auth import TokenProvider


class Recording(requests.Session):
    """A session that remembers the form bodies it posted (to look at MSAL's client assertion)."""

    def __init__(self, ca_file: str) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = ca_file
        self.forms: list[dict[str, str]] = []

    def post(self, url, data=None, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if isinstance(data, dict):
            self.forms.append({k: v.decode() if isinstance(v, bytes) else str(v) for k, v in data.items()})
        elif isinstance(data, str | bytes):
            text = data.decode() if isinstance(data, bytes) else data
            self.forms.append({k: v[0] for k, v in parse_qs(text).items()})
        return super().post(url, data=data, **kwargs)


TENANT, APP = "3f2504e0-4f89-41d3-9a0c-0305e82c3301", "3f2504e0-4f89-41d3-9a0c-0305e82c3302"

def provider(sandbox, app, pem: str | None = None, session=None, app_id: str | None = None):  # noqa: ANN001, ANN201
    cloud = get_cloud("commercial").with_overrides(sandbox.authority_host, sandbox.ingestion_url)
    return TokenProvider(cloud, app.tenant_id, app_id or app.app_id, pem or app.certificate.pem,
                         http_client=session or sandbox.http_session())


def test_one_token_from_the_cache_and_a_sha256_thumbprint(new_app, sandbox) -> None:  # noqa: ANN001
    app = new_app()
    session = Recording(str(sandbox.ca_file))
    tokens = provider(sandbox, app, session=session)
    first = tokens.token()
    assert first and tokens.token() == first and tokens.token() == first
    assert sandbox.stats()["tokens_issued"] == 1
    (form,) = [f for f in session.forms if "client_assertion" in f]
    assert "client_secret" not in form
    header = jwt.get_unverified_header(form["client_assertion"])
    cert = x509.load_pem_x509_certificate(app.certificate.certificate_pem.encode())
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()
    assert header["x5t#S256"].rstrip("=") == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert header["alg"] == "PS256"


def test_invalidate_signs_in_again(new_app, sandbox) -> None:  # noqa: ANN001
    tokens = provider(sandbox, new_app())
    first = tokens.token()
    tokens.invalidate()
    assert tokens.token() != first
    assert sandbox.stats()["tokens_issued"] == 2


def test_unknown_certificate_is_refused_once_with_entras_text(new_app, make_certificate, sandbox) -> None:  # noqa: ANN001
    app = new_app()
    stranger = make_certificate("stranger")
    tokens = provider(sandbox, app, pem=stranger.pem)
    with pytest.raises(SignInError) as info:
        tokens.token()
    text = str(info.value)
    assert "AADSTS700027" in text and app.app_id in text
    assert info.value.exit_code == EXIT_FAILED
    assert "PRIVATE KEY" not in text
    assert sandbox.stats()["tokens_issued"] == 0


def test_unknown_app_is_aadsts700016(new_app, sandbox) -> None:  # noqa: ANN001
    app = new_app()
    with pytest.raises(SignInError, match="AADSTS700016"):
        provider(sandbox, app, app_id="00000000-1111-4222-8333-444444444444").token()


def test_unreachable_authority_is_a_sign_in_error(new_app, sandbox) -> None:  # noqa: ANN001
    app = new_app()
    cloud = get_cloud("gcchigh").with_overrides("https://127.0.0.1:9")
    tokens = TokenProvider(cloud, app.tenant_id, app.app_id, app.certificate.pem, timeout=5)
    with pytest.raises(SignInError, match="could not reach the sign-in authority 127.0.0.1:9"):
        tokens.token()


@pytest.mark.parametrize("bad", ["", "not a pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_unusable_bundle_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        TokenProvider(get_cloud("commercial"), TENANT, APP, bad, source="--certificate x.pem")
    assert info.value.exit_code == EXIT_USAGE and "--certificate x.pem" in str(info.value)


def test_instance_discovery_only_for_the_clouds_own_hosts(make_certificate) -> None:  # noqa: ANN001
    pem = make_certificate().pem
    for name, cloud in CLOUDS.items():
        assert not TokenProvider(cloud, TENANT, APP, pem).host_overridden, name
        assert TokenProvider(cloud.with_overrides("https://login.example.test"), TENANT, APP, pem).host_overridden


# -- MSAL's two kinds of ValueError: a refused credential is not an unknown authority -------------------

def test_unknown_authority_path_is_an_authority_error_through_the_cli(new_app, sandbox, run_uploader,
                                                                       tmp_path) -> None:  # noqa: ANN001
    """OpenID discovery answers 404 under a wrong path: MSAL's ValueError is reported as the authority's."""
    app = new_app()
    csv_file = tmp_path / "departures.csv"
    csv_file.write_text("EmailAddress,ResignationDate,LastWorkingDate\n"
                        "a@contoso.com,2026-01-01T00:00,2026-01-31T00:00\n")
    flags = [f if f != app.authority_host else f"{app.authority_host}/nowhere" for f in app.flags]
    result = run_uploader("upload", str(csv_file), *flags)
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "OpenID metadata could not be read" in result.stderr and app.tenant_id in result.stderr
    assert "certificate credential" not in result.stderr


def test_msal_credential_error_is_named_as_a_credential_problem(new_app, sandbox) -> None:  # noqa: ANN001
    """The credential MSAL < 1.35 refused (a private key without thumbprint), raised by the installed MSAL."""
    import msal

    from uploader.send.auth import msal_stage

    app = new_app()
    authority = f"{sandbox.authority_host}/{app.tenant_id}"
    key_only = app.certificate.pem.split("-----BEGIN CERTIFICATE-----", 1)[0]
    with pytest.raises(ValueError) as credential:
        msal.ConfidentialClientApplication(app.app_id, authority=authority, client_credential={"private_key": key_only},
                                           instance_discovery=False, http_client=sandbox.http_session())
    assert msal_stage(credential.value) == "credential"
    with pytest.raises(ValueError) as authority_error:
        msal.ConfidentialClientApplication(app.app_id, authority=f"{sandbox.authority_host}/nowhere/{app.tenant_id}",
                                           client_credential={"private_key": key_only},
                                           instance_discovery=False, http_client=sandbox.http_session())
    assert msal_stage(authority_error.value) == "authority"

    tokens = provider(sandbox, app)
    err = tokens._constructor_error(credential.value)
    assert isinstance(err, UsageError) and err.exit_code == EXIT_USAGE
    assert "refused the certificate credential" in str(err) and "msal>=1.35" in str(err)
    assert "PRIVATE KEY" not in str(err) and "authority" not in str(err)
    err = tokens._constructor_error(authority_error.value)
    assert isinstance(err, SignInError) and "OpenID metadata could not be read" in str(err)


def test_pyproject_requires_an_msal_that_computes_the_thumbprint() -> None:
    """msal < 1.35 refuses `private_key` + `public_certificate` without `thumbprint` (the form auth.py uses)."""
    import re
    import tomllib
    from pathlib import Path

    import msal

    from uploader.send.auth import MIN_MSAL

    deps = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    (spec,) = [d for d in deps["dependencies"] if d.startswith("msal")]
    from uploader.send.keyvault import MIN_MSAL_ASSERTION

    found = re.search(r">=(\d+)\.(\d+)\b", spec)
    assert found, spec
    floor = (int(found.group(1)), int(found.group(2)))
    # the PEM credential needs MIN_MSAL; the Key Vault-signed assertion (a callable) the version documenting it
    for needed in (MIN_MSAL, MIN_MSAL_ASSERTION):
        assert floor >= tuple(int(p) for p in needed.split(".")), spec
    installed = tuple(int(p) for p in msal.__version__.split(".")[:2])
    assert installed >= floor
