"""TLS with one meaning on both drivers: every ``ssl_mode`` against private TLS-enabled
``mariadbd`` servers whose certificates come from a CA made at test time (a good one, one issued
to another name, an expired one, one from a CA the client does not trust), a server without
TLS, client certificates (``REQUIRE X509``), TLS 1.3, clear errors for bad files, and the fork
matrix over TLS with its unprotected control."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

import postfork
from postfork import DatabaseURL
from postfork.doctor.forkcheck import EXIT_WAYS
from postfork.doctor.forkcheck import run_in_subprocess as forkcheck
from postfork_tools.embedded import EmbeddedMariaDB
from postfork_tools.serve.runner import free_port
from tests.tls_ca import TestCA, tls_server_args

PASSWORD = "tls-secret"


@dataclass
class TLSLab:
    ca: TestCA
    other_ca: TestCA
    client_cert: Path
    client_key: Path
    servers: dict[str, EmbeddedMariaDB]

    def url(self, server: str, user: str = "app", **options: str) -> DatabaseURL:
        port = self.servers[server].port
        assert port is not None
        return DatabaseURL(
            host="127.0.0.1", port=port, user=user, password=PASSWORD, options=dict(options)
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSLab]:
    directory = tmp_path_factory.mktemp("tls")
    ca, other_ca = TestCA(directory), TestCA(directory, "untrusted CA")
    certificates = {
        "good": ca.issue("good"),
        "wrong-name": ca.issue("wrong-name", names=("db.elsewhere.example",)),
        "expired": ca.issue("expired", expired=True),
        "other-ca": other_ca.issue("other-ca"),
    }
    client = ca.issue("client", names=("app-client",), client=True)
    servers: dict[str, EmbeddedMariaDB] = {}
    try:
        for name, cert in {**certificates, "plain": None}.items():
            args = tls_server_args(ca, cert) if cert else []
            server = EmbeddedMariaDB(port=free_port(), server_args=args)
            servers[name] = server
            server.start()
            server.execute(f"CREATE USER 'app'@'%' IDENTIFIED BY '{PASSWORD}'")
            server.execute("GRANT ALL ON *.* TO 'app'@'%'")
            server.execute(f"CREATE USER 'x509'@'%' IDENTIFIED BY '{PASSWORD}' REQUIRE X509")
            server.execute("GRANT ALL ON *.* TO 'x509'@'%'")
        yield TLSLab(ca, other_ca, client.cert, client.key, servers)
    finally:
        for server in servers.values():
            server.stop()


def session_tls(url: DatabaseURL, driver: str) -> tuple[str, str]:
    """(cipher, TLS version) of a pooled session, as the server reports them ('' in plain)."""
    with (
        postfork.Pool(url, driver=driver, min_idle=0, connect_timeout=3) as pool,
        pool.connection() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')")
        status = dict(cursor.fetchall())
    return status["Ssl_cipher"], status["Ssl_version"]


def refusal(url: DatabaseURL, driver: str) -> str:
    with pytest.raises(postfork.DatabaseUnavailable) as raised:
        session_tls(url, driver)
    message = str(raised.value)
    assert PASSWORD not in message and "BEGIN" not in message
    return message


@pytest.mark.parametrize("mode", ["preferred", "required", "verify_ca", "verify_identity"])
def test_every_encrypting_mode_encrypts_with_tls_1_3(lab: TLSLab, driver: str, mode: str) -> None:
    cipher, version = session_tls(lab.url("good", ssl_mode=mode, ssl_ca=str(lab.ca.path)), driver)
    assert cipher.startswith("TLS_") and version == "TLSv1.3"


def test_disabled_is_plain_text(lab: TLSLab, driver: str) -> None:
    assert session_tls(lab.url("good", ssl_mode="disabled"), driver) == ("", "")


def test_no_tls_option_means_disabled(lab: TLSLab, driver: str) -> None:
    assert session_tls(lab.url("good"), driver) == ("", "")


def test_a_certificate_for_another_name_fails_verify_identity_on_both_drivers(
    lab: TLSLab, driver: str
) -> None:
    """The disagreement this fixes: mysqlclient used to accept any certificate from the CA."""
    ca = str(lab.ca.path)
    message = refusal(lab.url("wrong-name", ssl_mode="verify_identity", ssl_ca=ca), driver)
    assert "TLS: the server's certificate is not issued to '127.0.0.1'" in message
    # verify_identity is the default once a CA is given
    assert "not issued to" in refusal(lab.url("wrong-name", ssl_ca=ca), driver)
    # verify_ca checks the chain only; required checks nothing: both connect, encrypted
    assert session_tls(lab.url("wrong-name", ssl_mode="verify_ca", ssl_ca=ca), driver)[0]
    assert session_tls(lab.url("wrong-name", ssl_mode="required"), driver)[0]


def test_a_certificate_from_an_untrusted_ca_is_refused(lab: TLSLab, driver: str) -> None:
    for mode in ("verify_ca", "verify_identity"):
        url = lab.url("other-ca", ssl_mode=mode, ssl_ca=str(lab.ca.path))
        assert "TLS: the server's certificate is not signed by ssl_ca" in refusal(url, driver)


def test_an_expired_certificate_is_refused(lab: TLSLab, driver: str) -> None:
    url = lab.url("expired", ssl_mode="verify_ca", ssl_ca=str(lab.ca.path))
    assert "TLS: the server's certificate has expired" in refusal(url, driver)


def test_a_server_without_tls(lab: TLSLab, driver: str) -> None:
    """required and the verify modes never fall back to plain text; preferred does (that is
    why it is documented as unauthenticated)."""
    for mode in ("required", "verify_ca", "verify_identity"):
        url = lab.url("plain", ssl_mode=mode, ssl_ca=str(lab.ca.path))
        if mode == "required":
            url = lab.url("plain", ssl_mode=mode)
        message = refusal(url, driver)
        assert f"TLS: the server does not offer TLS (ssl_mode={mode})" in message, message
    assert session_tls(lab.url("plain", ssl_mode="preferred"), driver) == ("", "")


def test_client_certificates_for_require_x509(lab: TLSLab, driver: str) -> None:
    with_cert = lab.url(
        "good",
        "x509",
        ssl_ca=str(lab.ca.path),
        ssl_cert=str(lab.client_cert),
        ssl_key=str(lab.client_key),
    )
    assert session_tls(with_cert, driver)[0]
    without = lab.url("good", "x509", ssl_ca=str(lab.ca.path))
    assert "1045" in refusal(without, driver)


def test_bad_files_are_named_never_read_out(lab: TLSLab, tmp_path: Path, driver: str) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(postfork.ConfigError, match=f"ssl_ca file '{missing}' does not exist"):
        session_tls(lab.url("good", ssl_ca=str(missing)), driver)
    with pytest.raises(postfork.ConfigError, match="is not a file"):
        session_tls(lab.url("good", ssl_ca=str(tmp_path)), driver)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate: SECRET-CONTENT")
    with pytest.raises(postfork.ConfigError, match="holds no usable certificate") as raised:
        session_tls(lab.url("good", ssl_ca=str(garbage)), driver)
    assert "SECRET-CONTENT" not in str(raised.value)
    mismatched = lab.url(
        "good",
        "x509",
        ssl_ca=str(lab.ca.path),
        ssl_cert=str(lab.client_cert),
        ssl_key=str(lab.ca.path),
    )
    with pytest.raises(postfork.ConfigError, match="not a usable certificate and matching key"):
        session_tls(mismatched, driver)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("ssl_mode=sometimes", "ssl_mode must be one of disabled, preferred, required"),
        ("ssl_mode=verify_ca", "ssl_mode=verify_ca needs ssl_ca"),
        ("ssl_mode=disabled&ssl_ca=/ca.pem", "ssl_mode=disabled contradicts ssl_ca"),
        ("ssl_cert=/c.pem", "ssl_cert and ssl_key go together"),
    ],
)
def test_inconsistent_tls_options_are_refused_when_parsed(query: str, error: str) -> None:
    with pytest.raises(postfork.ConfigError, match=error):
        postfork.parse_url(f"mysql://app@db.internal/shop?{query}")


def test_ssl_mode_is_case_and_dash_insensitive() -> None:
    url = postfork.parse_url("mysql://app@db/shop?ssl_mode=VERIFY-IDENTITY&ssl_ca=/ca.pem")
    assert url.ssl_mode == "verify_identity"


@pytest.mark.parametrize("fork", ["os", "libc"])
def test_fork_matrix_over_tls(lab: TLSLab, driver: str, fork: str) -> None:
    """A warm TLS pool's parent sessions survive children leaving in every way; the control
    (a raw TLS connection closed by its child: a close-notify and COM_QUIT on the parent's
    session) breaks."""
    url = lab.url("good", ssl_mode="verify_identity", ssl_ca=str(lab.ca.path))
    url = replace(url, database=None)
    report = forkcheck(url, "--target", "pool", "--driver", driver, "--fork", fork, "--rounds", "3")
    assert report["sessions_unchanged"], report
    assert report["children"] == 3 * len(EXIT_WAYS)
    control = forkcheck(url, "--naive", "--driver", driver, "--fork", fork)
    assert not control["parent_survived"], control


def test_tls_given_through_connect_args_still_works(lab: TLSLab, driver: str) -> None:
    """An ORM that passes its own ``ssl`` dict (connect_args) is not overridden by postfork's
    default (no ssl_mode in the URL: nothing is forced off)."""
    ssl = {"ca": str(lab.ca.path)}
    with (
        postfork.Pool(
            lab.url("good"), driver=driver, min_idle=0, connect_args={"ssl": ssl}
        ) as pool,
        pool.connection() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cursor.fetchone()[1].startswith("TLS_")
