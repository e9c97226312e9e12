"""Logging for every service: stderr, one format, secrets redacted."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.config import Config

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def secrets_of(node: Any) -> list[str]:
    """Every non-empty secret value in a config tree: a pydantic ``Config`` or
    its ``ConfigView`` (both iterate as (name, value) pairs; secrets of both
    answer ``get_secret_value``)."""
    if hasattr(node, "get_secret_value"):
        value = node.get_secret_value()
        return [value] if value else []
    if isinstance(node, (str, bytes, int, float)) or node is None:
        return []
    if isinstance(node, dict):
        return [s for v in node.values() for s in secrets_of(v)]
    if isinstance(node, (list, tuple)):
        return [s for v in node for s in secrets_of(v)]
    return [s for _, v in node for s in secrets_of(v)]


class RedactingFormatter(logging.Formatter):
    """Replaces configured secrets in each record's final text, the message
    and any exception text and traceback alike (a client library's exception
    may quote a URL with the token); a last line of defence, since code should
    never log them in the first place."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(FORMAT)
        self._secrets = [s for s in secrets if len(s) >= 4]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for s in self._secrets:
            text = text.replace(s, "[secret]")
        return text


def setup_logging(config: Config | None = None, level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(secrets_of(config) if config is not None else []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or (config.general.log_level if config else "INFO"))
    # Client libraries log every request URL, and a Telegram URL holds the token.
    for noisy in ("httpx", "httpcore", "paramiko.transport", "telegram.ext", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
