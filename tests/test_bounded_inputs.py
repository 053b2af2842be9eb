"""The one way in for bytes, and hostile values where a path, an ID, a URL or a number belongs, through the real
CLI (issue 18, breaks 7, 9, 10, 11 and 15): every file reader refuses /dev/zero and a FIFO at once, a junk PFX
is refused by its size, PEM text given for a path or a tenant is never printed, a URL's user:password@ never
shown, hostile settings end in the documented exit code without a traceback, and names from outside (subjects,
header cells) are printed escaped."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from hostile_support import COLUMNS

from uploader.check.rules import RULE_UPN_INVISIBLE, cell_problem
from uploader.model.certs import generate_certificate
from uploader.model.scenarios import Field, Kind

PEM = generate_certificate("bounded-inputs").pem
PEM_LINES = [line for line in PEM.splitlines() if "-----" not in line]
TENANT, APP, JOB = (str(uuid.uuid4()) for _ in range(3))


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    from uploader.sandbox.client import clean_environ

    base = clean_environ()
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "uploader", *args], env=base, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out[-1500:]
    assert "PRIVATE KEY" not in out and not any(line in out for line in PEM_LINES), "key material was printed"


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.pem"
    os.mkfifo(path)
    return path


def mapping_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"jobId": JOB, "scenarios": [{"type": "resignation", "columns": COLUMNS}]}))
    return path


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.csv"
    path.write_text("EmailAddress,ResignationDate,LastWorkingDate\n")
    return path


def readers(tmp_path: Path, special: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """Every command-line place a file is read whole, with `special` given as that file."""
    stacks = tmp_path / "stacks"
    stacks.mkdir(exist_ok=True)
    stack = stacks / "Pulumi.s.yaml"
    if not stack.exists():
        stack.symlink_to(special)
    data = str(csv_file(tmp_path))
    return [
        ("cert show", ["cert", "show", special], {}),
        ("upload --certificate", ["upload", data, "--dry-run", "--certificate", special], {}),
        ("doctor --certificate", ["doctor", "--tenant-id", TENANT, "--app-id", APP, "--certificate", special,
                                  "--authority-host", "https://127.0.0.1:9", "--ingestion-url", "https://127.0.0.1:9",
                                  "--timeout", "1"], {}),
        ("validate --mapping", ["validate", data, "--mapping", special], {}),
        ("upload --mapping", ["upload", data, "--dry-run", "--mapping", special], {}),
        ("validate --stack", ["validate", data, "--stack", "s", "--stacks-dir", str(stacks)], {}),
        ("mapping init", ["mapping", "init", special, "--scenario", "resignation"], {}),
        ("validate FILE", ["validate", special, "--mapping", str(mapping_file(tmp_path))], {}),
        ("run UPLOADER_CERTIFICATE", ["run"], {"UPLOADER_CERTIFICATE": special, "UPLOADER_TENANT_ID": TENANT,
                                               "UPLOADER_APP_ID": APP, "UPLOADER_DROPZONE_URL": tmp_path.as_uri(),
                                               "UPLOADER_CONNECTORS": json.dumps([{
                                                   "name": "d", "jobId": JOB, "files": "*.csv", "scenarios": [
                                                       {"type": "resignation", "columns": COLUMNS}]}])}),
    ]


@pytest.mark.posix
@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_every_file_reader_refuses_special_files_at_once(tmp_path: Path, request: pytest.FixtureRequest,
                                                         special: str) -> None:
    path = str(request.getfixturevalue("fifo")) if special == "fifo" else special
    for name, args, env in readers(tmp_path, path):
        start = time.monotonic()
        done = cli(*args, env=env, timeout=30)
        seconds = time.monotonic() - start
        out = done.stdout + done.stderr
        assert seconds < 15, f"{name} took {seconds:.1f} s on {special}"
        assert done.returncode in (2, 3) or (name.startswith("doctor") and done.returncode == 2), (name, out[-800:])
        assert "not a regular file" in out, (name, out[-800:])
        assert_clean(done)


def test_a_300_mb_junk_pfx_is_refused_by_its_size(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pfx"
    with open(junk, "wb") as f:
        f.write(b"\x30\x82")
        f.truncate(300 * 1024 * 1024)  # sparse: 300 MB to read, no disk used
    for args in (["cert", "show", str(junk)], ["upload", str(csv_file(tmp_path)), "--dry-run", "--certificate",
                                               str(junk)]):
        start = time.monotonic()
        done = cli(*args)
        assert done.returncode == 2, done.stderr
        assert "larger than 1 MiB" in done.stderr and time.monotonic() - start < 15
        assert_clean(done)


# -- 7. PEM text where a path or an ID belongs; credentials in URLs ------------------------------------------------

def test_pem_text_given_for_a_path_is_never_printed(tmp_path: Path) -> None:
    data = str(csv_file(tmp_path))
    for args in (["cert", "show", PEM], ["mapping", "init", PEM, "--scenario", "resignation"],
                 ["validate", PEM, "--mapping", str(mapping_file(tmp_path))], ["validate", data, "--mapping", PEM],
                 ["upload", data, "--dry-run", "--certificate", PEM]):
        done = cli(*args)
        assert done.returncode == 2, (args[0], done.stderr[-600:])
        assert "not shown" in done.stderr or "withheld" in done.stderr, (args[0], done.stderr[-600:])
        assert_clean(done)


def test_pem_given_as_tenant_id_is_refused_and_never_printed(tmp_path: Path, make_certificate) -> None:  # noqa: ANN001
    cert = make_certificate()
    data = str(csv_file(tmp_path))
    common = ["--app-id", APP, "--certificate", str(cert.path), "--authority-host", "https://127.0.0.1:9",
              "--ingestion-url", "https://127.0.0.1:9"]
    up = cli("upload", data, "--tenant-id", PEM, "--job-id", JOB, "--state-dir", str(tmp_path / "s"), *common)
    assert up.returncode == 2 and "--tenant-id: must be" in up.stderr, up.stderr[-600:]
    doc = cli("doctor", "--tenant-id", PEM, *common, "--timeout", "1")
    assert doc.returncode == 2 and "FAIL settings: --tenant-id: must be" in doc.stdout, doc.stdout[-600:]
    for done in (up, doc):
        assert_clean(done)


@pytest.mark.parametrize("flag", ["--authority-host", "--ingestion-url"])
def test_doctor_never_prints_a_urls_user_and_password(tmp_path: Path, make_certificate, flag: str) -> None:  # noqa: ANN001
    cert = make_certificate()
    urls = {"--authority-host": "https://127.0.0.1:9", "--ingestion-url": "https://127.0.0.1:9"}
    urls[flag] = "https://zquser:zqhunter2@127.0.0.1:9/x"
    done = cli("doctor", "--tenant-id", TENANT, "--app-id", APP, "--certificate", str(cert.path), "--timeout", "1",
               *[part for item in urls.items() for part in item])
    assert done.returncode == 2, done.stdout[-600:]
    assert "zqhunter2" not in done.stdout + done.stderr and "zquser" not in done.stdout + done.stderr
    assert f"{flag}: must not hold a user name or password" in done.stdout
    assert_clean(done)


# -- 11. hostile settings: the documented exit code, never a traceback -----------------------------------------

@pytest.mark.parametrize("value", ["inf", "1e300", "nan", "-1", "0"])
def test_doctor_timeout_out_of_range_is_a_usage_error(value: str) -> None:
    done = cli("doctor", "--tenant-id", TENANT, "--app-id", APP, env={"UPLOADER_TIMEOUT": value})
    assert done.returncode == 2, done.stdout[-400:] + done.stderr[-400:]
    assert "UPLOADER_TIMEOUT" in done.stderr and "seconds" in done.stderr
    assert_clean(done)


def test_undecodable_pfx_password_is_a_wrong_password_not_a_traceback(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(PEM.encode(), password=None)
    cert = x509.load_pem_x509_certificate(PEM.encode())
    pfx = tmp_path / "c.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"x", key, cert, None,  # type: ignore[arg-type]
                                                          serialization.BestAvailableEncryption(b"right")))
    bad = os.fsdecode(b"\xff\xfe-wrong")
    done = cli("upload", str(csv_file(tmp_path)), "--dry-run", "--certificate", str(pfx),
               env={"UPLOADER_CERTIFICATE_PASSWORD": bad})
    assert done.returncode == 2 and "wrong password" in done.stderr, done.stderr[-600:]
    assert_clean(done)


@pytest.mark.parametrize("url", ["https://[::1", "https://zq:zqpass@acct.blob.core.windows.net/c",
                                 "https://acct.blob.core.windows.net:99999/c"])
def test_hostile_dropzone_url_is_a_usage_error(tmp_path: Path, make_certificate, url: str) -> None:  # noqa: ANN001
    cert = make_certificate()
    env = {"UPLOADER_TENANT_ID": TENANT, "UPLOADER_APP_ID": APP, "UPLOADER_CERTIFICATE_PEM": cert.pem,
           "UPLOADER_DROPZONE_URL": url, "UPLOADER_CONNECTORS": json.dumps([{
               "name": "d", "jobId": JOB, "files": "*.csv", "scenarios": [{"type": "resignation",
                                                                          "columns": COLUMNS}]}])}
    run = cli("run", env=env)
    doctor = cli("doctor", "--timeout", "1", "--authority-host", "https://127.0.0.1:9", "--ingestion-url",
                 "https://127.0.0.1:9", env=env)
    assert run.returncode == 2 and "UPLOADER_DROPZONE_URL" in run.stderr, run.stderr[-600:]
    assert doctor.returncode == 2 and "UPLOADER_DROPZONE_URL" in doctor.stdout, doctor.stdout[-600:]
    for done in (run, doctor):
        assert "zqpass" not in done.stdout + done.stderr
        assert_clean(done)


def test_a_ca_bundle_that_does_not_exist_is_named(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    app = new_app()
    missing = str(tmp_path / "no-such-ca.pem")
    env = {**sandbox.env, "REQUESTS_CA_BUNDLE": missing, "CURL_CA_BUNDLE": missing, "SSL_CERT_FILE": missing}
    data = csv_file(tmp_path)
    data.write_text("EmailAddress,ResignationDate,LastWorkingDate\nzq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    up = subprocess.run([sys.executable, "-m", "uploader", "upload", str(data), *app.flags, "--state-dir",
                         str(tmp_path / "s")], env=env, capture_output=True, text=True, timeout=60)
    # checked when the command starts (uploader/model/environment.py): exit 2 naming the variable, before any request
    named = "REQUESTS_CA_BUNDLE: names a file that does not exist"
    assert up.returncode == 2 and named in up.stderr and missing not in up.stderr, up.stderr[-800:]
    flags = [f for f in app.flags]
    del flags[flags.index("--job-id"):flags.index("--job-id") + 2]
    doc = subprocess.run([sys.executable, "-m", "uploader", "doctor", *flags, "--timeout", "3"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert doc.returncode == 2 and named in doc.stderr, doc.stderr[-800:]
    for done in (up, doc):
        assert_clean(done)
        assert "zq@contoso.com" not in done.stdout + done.stderr


# -- 15. a certificate not valid yet is refused before sign-in -------------------------------------------------

def test_upload_and_run_refuse_a_certificate_not_valid_yet(tmp_path: Path, sandbox, new_app) -> None:  # noqa: ANN001
    from conftest import Certificate

    future = generate_certificate("future", now=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    path = tmp_path / "future.pem"
    path.write_text(future.pem)
    path.chmod(0o600)
    cert = Certificate(path, future.pem, future.certificate_pem, future.thumbprint_sha256, future.thumbprint_sha1)
    app = new_app(certificate=cert)
    data = tmp_path / "a.csv"
    data.write_text("EmailAddress,ResignationDate,LastWorkingDate\nzq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    up = subprocess.run([sys.executable, "-m", "uploader", "upload", str(data), *app.flags, "--state-dir",
                         str(tmp_path / "s")], env=sandbox.env, capture_output=True, text=True, timeout=60)
    zone = tmp_path / "zone"
    (zone / "incoming").mkdir(parents=True)
    (zone / "incoming" / "a.csv").write_text(data.read_text())
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("UPLOADER_")}
    env.update({"UPLOADER_TENANT_ID": app.tenant_id, "UPLOADER_APP_ID": app.app_id, "UPLOADER_CERTIFICATE_PEM":
                future.pem, "UPLOADER_AUTHORITY_HOST": app.authority_host, "UPLOADER_INGESTION_URL":
                app.ingestion_url, "UPLOADER_DROPZONE_URL": zone.as_uri(), "UPLOADER_SETTLE_SECONDS": "0",
                "UPLOADER_CONNECTORS": json.dumps([{
                    "name": "d", "jobId": app.job_id, "files": "*.csv", "scenarios": [
                        {"type": "resignation", "columns": COLUMNS}]}])})
    run = subprocess.run([sys.executable, "-m", "uploader", "run"], env=env, capture_output=True, text=True,
                         timeout=60)
    for done in (up, run):
        assert done.returncode == 2, done.stdout[-600:] + done.stderr[-600:]
        assert "not valid before" in done.stdout + done.stderr
        assert_clean(done)
    assert sandbox.stats()["token_requests"] == 0 and sandbox.received(app.job_id) == []


# -- 9. invisible characters: refused in UPNs, escaped in subjects and header cells ------------------------------

@pytest.mark.parametrize("ch", ["\U000e0041", "\ufe0f", "\U000e0100", "\u3164", "\u2800", "\u115f", "\u1160",
                                "\uffa0", "\u00a0", "\u202e", "\u200b"])
def test_upn_with_an_invisible_character_is_refused(ch: str) -> None:
    upn = Field("userPrincipalName", True, Kind.UPN)
    assert cell_problem(upn, f"zq{ch}@contoso.com") == RULE_UPN_INVISIBLE
    assert cell_problem(upn, "zq.person@contoso.com") is None


def test_cert_show_escapes_subjects(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    hostile = "zq\x1b[2J\u202eevil\nFORGED: valid: yes"
    bundle = generate_certificate("x", subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostile)]))
    path = tmp_path / "h.pem"
    path.write_text(bundle.certificate_pem)
    done = cli("cert", "show", str(path))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert not any(line.startswith("FORGED") for line in done.stdout.splitlines())
    assert "\\x1b[2J\\u202eevil\\x0aFORGED" in done.stdout


# -- 10. a first record taken for a header ------------------------------------------------------------------------

@pytest.mark.parametrize("first", ["Zqsmith,Zqjohn,Manager", "Zqsmith,Sales,Sales", "Zqsmith,,Sales",
                                   "Zqsmith,42,Sales", "Zq\u202eSmith,EmailAddress,x"])
def test_mapping_init_never_takes_a_record_for_the_header(tmp_path: Path, first: str) -> None:
    data = tmp_path / "noheader.csv"
    data.write_text(first + "\n" + "Zqother,Zqrow,Clerk\n")
    done = cli("mapping", "init", str(data), "--scenario", "resignation")
    assert done.returncode == 3, done.stderr[-600:]
    assert f"{data}:1:" in done.stderr
    assert "zq" not in (done.stdout + done.stderr).lower().replace(str(tmp_path).lower(), ""), "a cell was printed"


def test_mapping_init_takes_an_unknown_header_when_told(tmp_path: Path) -> None:
    data = tmp_path / "custom.csv"
    data.write_text("Work Mail,Leaving On,Last Day\nzq@contoso.com,2026-11-01T10:00,2026-12-15T17:00\n")
    refused = cli("mapping", "init", str(data), "--scenario", "resignation")
    assert refused.returncode == 3 and "--first-line-is-header" in refused.stderr
    taken = cli("mapping", "init", str(data), "--scenario", "resignation", "--first-line-is-header")
    assert taken.returncode == 0, taken.stderr
    assert "unmapped columns: Work Mail, Leaving On, Last Day" in taken.stderr


def test_argparse_errors_repeat_no_value_raw() -> None:
    for value in (PEM, "zq\x1b[2J\u202e"):
        done = cli("endpoints", "--cloud", value)
        assert done.returncode == 2
        assert "\x1b" not in done.stderr and "\u202e" not in done.stderr
        assert_clean(done)
