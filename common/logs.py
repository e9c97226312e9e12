"""Logging for every service: stderr, one format, secrets redacted."""

from __future__ import annotations

import logging
import sys

from pydantic import BaseModel, SecretStr

from common.config import Config

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def secrets_of(model: BaseModel) -> list[str]:
    """Every non-empty secret value in a config tree."""
    found: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            if value.get_secret_value():
                found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            found.extend(secrets_of(value))
        elif isinstance(value, list):
            found.extend(s for v in value if isinstance(v, BaseModel) for s in secrets_of(v))
    return found


class RedactSecrets(logging.Filter):
    """Replaces configured secrets in a record's final text; a last line of
    defence, since code should never log them in the first place."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if any(s in text for s in self._secrets):
            for s in self._secrets:
                text = text.replace(s, "[secret]")
            record.msg, record.args = text, None
        return True


def setup_logging(config: Config | None = None, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if config is not None:
        handler.addFilter(RedactSecrets(secrets_of(config)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or (config.general.log_level if config else "INFO"))
    # Client libraries log every request URL, and a Telegram URL holds the token.
    for noisy in ("httpx", "httpcore", "paramiko.transport", "telegram.ext", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
