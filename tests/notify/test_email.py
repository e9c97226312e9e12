"""E-mail alerts received by a real SMTP server (aiosmtpd), plain and STARTTLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import smtplib
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from common.config import ConfigError, EmailConfig, parse_config
from common.messages import Motion, Snapshot
from services.notify.mailer import build_message, send_mail
from tests.notify.conftest import Harness, jpeg, wait_until
from tests.notify.peers import SmtpSink


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_alert_mail_carries_the_snapshot(smtp: SmtpSink,
                                         harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory({"email": {"enabled": True, "host": "127.0.0.1", "port": smtp.port,
                                   "security": "none", "sender": "cam@example.org",
                                   "recipients": ["me@example.org"]},
                         "telegram": {"cooldown_seconds": 0}})
    photo = jpeg(11)
    ts = time.time()
    h.detect.publish(Motion, ts=ts, event_id="m1", phase="start", labels=["person"])
    h.detect.publish(Snapshot, [photo], ts=ts, event_id="m1", kind="event", width=320,
                     height=240)
    mail = smtp.wait()[0]
    assert mail["To"] == "me@example.org" and "Motion on cam1" in mail["Subject"]
    parts = [p for p in mail.walk() if p.get_content_type() == "image/jpeg"]
    assert len(parts) == 1 and parts[0].get_payload(decode=True) == photo
    # counted once the SMTP session is over, a moment after the sink has the mail
    wait_until(lambda: h.svc.counters["mail_sent"] == 1, 5, "the mail counted")


def test_starttls_with_a_private_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(tls_context=context).start()
    try:
        cfg = EmailConfig(enabled=True, host="127.0.0.1", port=sink.port, security="starttls",
                          ca_file=str(cert), sender="cam@example.org",
                          recipients=["me@example.org"])
        send_mail(cfg, build_message(cfg, "test", "body", b"\xff\xd8jpeg"))
        assert sink.wait()[0]["Subject"] == "test"
        # Without the CA the server's certificate is not trusted: nothing is sent.
        untrusting = cfg.model_copy(update={"ca_file": ""})
        try:
            send_mail(untrusting, build_message(untrusting, "no", "body", None))
            raise AssertionError("an untrusted certificate was accepted")
        except ssl.SSLCertVerificationError:
            pass
        assert len(sink.messages) == 1
    finally:
        sink.stop()


def test_password_is_never_sent_in_clear(smtp: SmtpSink) -> None:
    with pytest.raises(ConfigError, match="notify.email: .*password needs security"):
        parse_config({"notify": {"email": {"security": "none", "password": "hunter2"}}})
    # And if a config ever got past validation, the sender still refuses.
    cfg = EmailConfig.model_construct(**{**EmailConfig().__dict__, "enabled": True,
                                         "host": "127.0.0.1", "port": smtp.port,
                                         "security": "none", "username": "cam",
                                         "password": SecretStr("hunter2"),
                                         "recipients": ["me@example.org"]})
    with pytest.raises(smtplib.SMTPException, match="without TLS"):
        send_mail(cfg, build_message(cfg, "x", "y", None))
    assert smtp.messages == []
