"""E-mail alerts with the snapshot attached, over STARTTLS or SSL.

Sending runs on a one-thread executor owned by the service, so a slow mail
server never delays Telegram or MQTT. The password is used only for the
SMTP login and never logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from common.config import EmailConfig

log = logging.getLogger(__name__)


def build_message(cfg: EmailConfig, subject: str, body: str, jpeg: bytes | None,
                  filename: str = "snapshot.jpg") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = cfg.sender or cfg.username
    msg["To"] = ", ".join(cfg.recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="pisentry")
    msg.set_content(body)
    if jpeg:
        msg.add_attachment(jpeg, maintype="image", subtype="jpeg", filename=filename)
    return msg


def tls_context(cfg: EmailConfig) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cfg.ca_file or None)


def send_mail(cfg: EmailConfig, msg: EmailMessage) -> None:
    """Send ``msg``; raises ``smtplib.SMTPException`` or ``OSError`` on failure."""
    password = cfg.password.get_secret_value()
    if cfg.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds,
                                                context=tls_context(cfg))
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
    with client:
        if cfg.security == "starttls":
            client.starttls(context=tls_context(cfg))
        if cfg.username and password:
            if cfg.security == "none":
                # Security by default: a password never crosses the network in clear.
                raise smtplib.SMTPException("refusing to send the SMTP password without TLS "
                                            "(set notify.email.security)")
            client.login(cfg.username, password)
        client.send_message(msg)
