"""Who may use the web service: the password, session cookies, API keys and
the login rate limit. Pure logic over files in ``home.state_dir``; no sockets.

Password. One user (``admin``). Only an scrypt hash is kept, in
``state/web_password.json`` (mode 0600). With no password yet, the first start
generates one, shows it once on the console and keeps only its hash, so a
fresh install is never open (Frigate does the same).

Sessions are stateless signed cookies: ``<expiry>.<nonce>.<hmac>`` where the
HMAC key is a random secret in ``state/web_secret`` mixed with the password
hash, so changing the password logs every session out, and a restart of the
web process does not. Logout revokes the cookie until it expires, in
``state/web_revoked.json``, so a restart does not bring it back.
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


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the start (never briefly readable)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def initial_password_file(home: Home) -> Path:
    """Where a password the web service made is left when there is no console."""
    return home.state_dir / "web_initial_password.txt"


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
    write_private(password_file(home), json.dumps(hash_password(password)).encode())
    initial_password_file(home).unlink(missing_ok=True)  # a made-up one is no longer valid


def ensure_initial_password(home: Home) -> str | None:
    """Generate, store (hash only) and return a password when none is set;
    None when one exists. The caller shows it once; it is never logged."""
    if load_password_record(home) is not None:
        return None
    password = secrets.token_urlsafe(12)  # 96 bits
    set_password(home, password)
    from services.web import wizard  # a fresh instance: its first login opens the wizard

    wizard.set_state(home, "pending")
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
    write_private(path, key)
    return key


class Sessions:
    """Issue and check signed session cookies. Revoked ones (logged out) are
    kept, as hashes, in ``revoked_file`` until they expire, so a restart of
    the web service does not bring a logged-out cookie back."""

    def __init__(self, key: bytes, password_hash: str, lifetime: float,
                 revoked_file: Path | None = None) -> None:
        # Mixing the password hash into the key ends every session on a change.
        self._key = hashlib.sha256(key + password_hash.encode()).digest()
        self.lifetime = lifetime
        self.revoked_file = revoked_file
        self._revoked: dict[str, float] = {}
        if revoked_file is not None:
            try:
                loaded = json.loads(revoked_file.read_text())
                self._revoked = {str(k): float(v) for k, v in loaded.items()}
            except (OSError, ValueError, AttributeError, TypeError):
                pass  # none yet (or unreadable: a fresh list, logged-out cookies stay out)

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("utf-8", "replace"),
                        hashlib.sha256).hexdigest().encode()

    @staticmethod
    def _id(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

    def issue(self, now: float) -> str:
        body = f"{int(now + self.lifetime)}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body).decode()}"

    def valid(self, token: str, now: float) -> bool:
        if not token or len(token) > 200 or self._id(token) in self._revoked:
            return False
        body, _, mac = token.rpartition(".")
        # Bytes, not str: compare_digest refuses a str with a non-ASCII character.
        if not hmac.compare_digest(self._sign(body), mac.encode("utf-8", "replace")):
            return False
        expiry, _, _ = body.partition(".")
        try:
            return now < int(expiry)
        except ValueError:
            return False

    def revoke(self, token: str, now: float) -> None:
        if not self.valid(token, now):
            return
        self._revoked[self._id(token)] = now + self.lifetime
        self._revoked = {t: exp for t, exp in self._revoked.items() if exp > now}
        if len(self._revoked) > 10_000:  # bound the file: the oldest are nearest expiry
            self._revoked = dict(sorted(self._revoked.items(), key=lambda kv: kv[1])[-10_000:])
        if self.revoked_file is not None:
            write_private(self.revoked_file, json.dumps(self._revoked).encode())


class AttemptLimiter:
    """Attempts per client (login passwords, API keys), counted when an
    attempt starts, before the check: 200 concurrent tries from one client
    get at most ``limit`` checks, not 200. A success gives its attempt back.

    A client that used up its ``limit`` in ``window`` seconds waits; each
    time it hits the limit again the wait doubles, up to ``max_wait``.
    ``global_limit`` bounds the failed attempts of everyone together (many
    addresses guessing); clients that have logged in before are exempt from
    it, so a burst from strangers cannot lock the owner out."""

    def __init__(self, limit: int = 10, window: float = 60.0, global_limit: int = 100,
                 max_wait: float = 3600.0) -> None:
        self.limit, self.window = limit, window
        self.global_limit, self.max_wait = global_limit, max_wait
        self._attempts: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._strikes: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._known: dict[str, float] = {}
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    def attempt(self, client: str, now: float) -> float:
        """Count an attempt by ``client``; 0 when it may go on, else the
        seconds it must wait (and the attempt is not counted)."""
        with self._lock:
            self._forget_idle(now)
            until = self._until.get(client, 0.0)
            if now < until:
                return until - now
            q = self._attempts.setdefault(client, deque())
            self._trim(q, now)
            self._trim(self._all, now)
            if len(q) >= self.limit:
                strikes = self._strikes.get(client, 0) + 1
                self._strikes[client] = strikes
                wait = min(self.window * 2 ** (strikes - 1), self.max_wait)
                self._until[client] = now + wait
                return wait
            if client not in self._known and len(self._all) >= self.global_limit:
                return self._all[0] + self.window - now
            q.append(now)
            self._all.append(now)
            return 0.0

    def succeeded(self, client: str, now: float) -> None:
        with self._lock:
            q = self._attempts.get(client)
            if q:
                q.pop()
            if self._all:
                self._all.pop()
            self._strikes.pop(client, None)
            self._known[client] = now

    def _forget_idle(self, now: float) -> None:
        """Bound memory: forget clients with nothing in the window."""
        if len(self._attempts) + len(self._known) <= 10_000:
            return
        horizon = now - max(self.window, self.max_wait)
        for key in [k for k, q in self._attempts.items() if not q or q[-1] <= horizon]:
            del self._attempts[key]
            self._strikes.pop(key, None)
            self._until.pop(key, None)
        if len(self._known) > 1000:
            self._known = dict(sorted(self._known.items(), key=lambda kv: kv[1])[-1000:])


def api_key_ok(given: str | None, configured: str) -> bool:
    return bool(configured) and given is not None and hmac.compare_digest(
        given.encode("utf-8", "replace"), configured.encode())
