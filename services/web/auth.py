"""Who may use the web service: the password, session cookies, API keys and
the login rate limit. Pure logic over files in ``home.state_dir``; no sockets.

Password. One user (``admin``). Only an scrypt hash is kept, in
``state/web_password.json`` (mode 0600). With no password yet, the first start
generates one, shows it once on the console and keeps only its hash, so a
fresh install is never open (Frigate does the same).

Sessions are stateless signed cookies: ``<expiry>.<nonce>.<hmac>`` where the
HMAC key is a random secret in ``state/web_secret`` mixed with the password
hash, so changing the password logs every session out, and a restart of the
web process does not. Logout revokes the cookie in memory until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from common.paths import Home

log = logging.getLogger(__name__)

USERNAME = "admin"
# scrypt cost: 16 MiB and ~50 ms on a laptop core, a few hundred ms on a Pi,
# which is fine for a login and expensive for someone holding the hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


class PasswordError(ValueError):
    """A password that cannot be set (too short, too long)."""


def password_file(home: Home) -> Path:
    return home.state_dir / "web_password.json"


def hash_password(password: str, salt: bytes | None = None) -> dict[str, str | int]:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=64 * 1024 * 1024, dklen=32)
    return {"algo": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": base64.b64encode(salt).decode(), "hash": base64.b64encode(digest).decode()}


def verify_password(password: str, record: dict[str, str | int]) -> bool:
    if record.get("algo") != "scrypt" or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        salt = base64.b64decode(str(record["salt"]))
        want = base64.b64decode(str(record["hash"]))
        got = hashlib.scrypt(password.encode(), salt=salt, n=int(record["n"]),
                             r=int(record["r"]), p=int(record["p"]),
                             maxmem=64 * 1024 * 1024, dklen=len(want))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the start (never briefly readable)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_password_record(home: Home) -> dict[str, str | int] | None:
    try:
        record = json.loads(password_file(home).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "hash" in record else None


def set_password(home: Home, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordError(f"password too short (at least {MIN_PASSWORD_LENGTH} characters)")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordError(f"password too long (at most {MAX_PASSWORD_LENGTH} characters)")
    _write_private(password_file(home), json.dumps(hash_password(password)).encode())


def ensure_initial_password(home: Home) -> str | None:
    """Generate, store (hash only) and return a password when none is set;
    None when one exists. The caller shows it once; it is never logged."""
    if load_password_record(home) is not None:
        return None
    password = secrets.token_urlsafe(12)  # 96 bits
    set_password(home, password)
    return password


def secret_key(home: Home) -> bytes:
    """The random key that signs session cookies, made on first use."""
    path = home.state_dir / "web_secret"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    key = secrets.token_bytes(32)
    _write_private(path, key)
    return key


class Sessions:
    """Issue and check signed session cookies."""

    def __init__(self, key: bytes, password_hash: str, lifetime: float) -> None:
        # Mixing the password hash into the key ends every session on a change.
        self._key = hashlib.sha256(key + password_hash.encode()).digest()
        self.lifetime = lifetime
        self._revoked: dict[str, float] = {}

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float) -> str:
        body = f"{int(now + self.lifetime)}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, token: str, now: float) -> bool:
        if not token or len(token) > 200 or token in self._revoked:
            return False
        body, _, mac = token.rpartition(".")
        if not hmac.compare_digest(self._sign(body), mac):
            return False
        expiry, _, _ = body.partition(".")
        try:
            return now < int(expiry)
        except ValueError:
            return False

    def revoke(self, token: str, now: float) -> None:
        if self.valid(token, now):
            self._revoked[token] = now + self.lifetime
        self._revoked = {t: exp for t, exp in self._revoked.items() if exp > now}


@dataclass
class LoginLimiter:
    """At most ``limit`` failed logins per ``window`` seconds per client, and
    ``global_limit`` from everyone together (a spread-out guessing attack)."""

    limit: int = 10
    window: float = 60.0
    global_limit: int = 100

    def __post_init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def blocked(self, client: str, now: float) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        with self._lock:
            q = self._failures.get(client, deque())
            self._trim(q, now)
            self._trim(self._all, now)
            waits = []
            if len(q) >= self.limit:
                waits.append(q[0] + self.window - now)
            if len(self._all) >= self.global_limit:
                waits.append(self._all[0] + self.window - now)
            return max(waits, default=0.0)

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._failures) > 10_000:  # forget idle clients, bound memory
                for key in [k for k, q in self._failures.items() if not q or
                            q[-1] <= now - self.window]:
                    del self._failures[key]


def api_key_ok(given: str | None, configured: str) -> bool:
    return bool(configured) and given is not None and hmac.compare_digest(
        given.encode(), configured.encode())
