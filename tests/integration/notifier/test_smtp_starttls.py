"""The notifier's email channel against a real SMTP server (aiosmtpd) that wants what a
clinic's relay wants: STARTTLS with a certificate (self-signed, made here and trusted
through SMTP_CA_FILE) and a login. Mail goes only encrypted and authenticated; a wrong
password, an untrusted certificate or a relay without STARTTLS is a ChannelError (retried
later), never a message sent in clear."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notifier.channels import ChannelError, Outgoing, SmtpMailer
from services.notifier.wiring import NotifierConfig
from shared.config import Settings
from simulator.receivers import free_port

USER, PASSWORD = "paincare-notifier", "relay-password-1"
MESSAGE = Outgoing("n-1", "email", "patient@example.org", "Your appointment", "See you")


def _certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.test")])
    now = datetime.now(UTC)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "relay.pem", tmp / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class Relay:
    port: int
    ca_file: Path
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append({"to": envelope.rcpt_tos, "tls": session.ssl is not None,
                              "login": session.authenticated and _login(session)})
        return "250 OK"


def _login(session: Any) -> bytes | None:
    data = getattr(session, "auth_data", None) or getattr(session, "login_data", None)
    return data.login if isinstance(data, LoginPassword) else data


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    cert_file, key_file = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    handler = Relay(free_port(), cert_file)
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port,
                            tls_context=context, require_starttls=True, auth_required=True,
                            auth_require_tls=True, authenticator=_authenticate)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def _mailer(relay: Relay, **kw: Any) -> SmtpMailer:
    options = {"starttls": True, "username": USER, "password": PASSWORD,
               "ca_file": str(relay.ca_file), **kw}
    return SmtpMailer("127.0.0.1", relay.port, "clinic@paincare.test", 10.0, **options)


def test_mail_goes_over_starttls_with_a_login(relay: Relay) -> None:
    mailer = _mailer(relay)
    try:
        mailer.send(MESSAGE)
        mailer.send(MESSAGE)  # the one connection, still encrypted and logged in
    finally:
        mailer.close()
    assert [r["to"] for r in relay.received] == [["patient@example.org"]] * 2
    assert [(r["tls"], r["login"]) for r in relay.received] == [(True, USER.encode())] * 2


@pytest.mark.parametrize(("options", "words"), [
    ({"password": "wrong"}, "535"),                     # authentication failed
    ({"ca_file": ""}, "CERTIFICATE_VERIFY_FAILED"),     # a certificate nobody vouches for
    ({"starttls": False, "username": ""}, "530"),       # the relay wants STARTTLS first
])
def test_no_mail_leaves_unless_encrypted_and_authenticated(relay: Relay, options: dict,
                                                           words: str) -> None:
    mailer = _mailer(relay, **options)
    with pytest.raises(ChannelError, match=words):
        mailer.send(MESSAGE)
    mailer.close()
    assert relay.received == []


def test_the_notifier_reads_its_relay_settings() -> None:
    settings = Settings.for_service("notifier", database_url="sqlite://", extra={
        "SMTP_STARTTLS": "true", "SMTP_USERNAME": USER, "SMTP_PASSWORD": PASSWORD,
        "SMTP_CA_FILE": "/etc/clinic/relay-ca.pem"})
    config = NotifierConfig.from_settings(settings)
    assert (config.smtp_starttls, config.smtp_username, config.smtp_password,
            config.smtp_ca_file) == (True, USER, PASSWORD, "/etc/clinic/relay-ca.pem")
    assert PASSWORD not in repr(config)
