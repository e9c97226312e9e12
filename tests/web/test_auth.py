"""Password hashing, first-start password, session cookies, login limiter."""

from __future__ import annotations

import json
import stat

import pytest

from common.paths import Home
from services.web import auth


def test_first_start_generates_once_and_keeps_only_a_hash(home: Home) -> None:
    password = auth.ensure_initial_password(home)
    assert password and len(password) >= 16
    assert auth.ensure_initial_password(home) is None  # shown once, never again
    path = auth.password_file(home)
    text = path.read_text()
    assert password not in text
    record = json.loads(text)
    assert record["algo"] == "scrypt" and record["n"] >= 2**14
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.verify_password(password, record)
    assert not auth.verify_password(password + "x", record)


def test_set_password_rules(home: Home) -> None:
    with pytest.raises(auth.PasswordError, match="too short"):
        auth.set_password(home, "short")
    auth.set_password(home, "long enough password")
    assert auth.verify_password("long enough password", auth.load_password_record(home))
    assert auth.ensure_initial_password(home) is None


def test_garbage_password_file_is_treated_as_missing(home: Home) -> None:
    auth.password_file(home).write_text("{not json")
    assert auth.load_password_record(home) is None
    assert not auth.verify_password("x", {"algo": "md5", "hash": "x"})


def test_sessions_sign_expire_and_revoke() -> None:
    s = auth.Sessions(b"k" * 32, "hash1", lifetime=60)
    token = s.issue(now=1000)
    assert s.valid(token, 1030)
    assert not s.valid(token, 1061)  # expired
    assert not s.valid(token.replace(token[-1], "0" if token[-1] != "0" else "1"), 1030)
    expiry, nonce, mac = token.split(".")
    assert not s.valid(f"{int(expiry) + 9999}.{nonce}.{mac}", 1030)  # extended expiry
    assert not auth.Sessions(b"k" * 32, "hash2", 60).valid(token, 1030)  # new password
    s.revoke(token, 1030)
    assert not s.valid(token, 1031)


def test_limiter_counts_per_client_backs_off_and_spares_known_clients() -> None:
    lim = auth.AttemptLimiter(limit=10, window=60, global_limit=12)
    for i in range(10):
        assert lim.attempt("a", 100 + i) == 0
    assert lim.attempt("a", 110) == 60  # the limit: one window
    assert lim.attempt("b", 110) == 0  # another client is not blocked by a's attempts
    assert lim.attempt("a", 169) > 0
    for i in range(10):  # the first attempts left the window
        assert lim.attempt("a", 171 + i) == 0
    assert lim.attempt("a", 181) == 120  # hit again: the wait doubles
    lim.succeeded("b", 200)  # b logged in: its attempt is given back, b is known
    for i in range(12):
        lim.attempt(f"c{i}", 200)
    assert lim.attempt("fresh", 201) > 0  # the global limit: many clients guessing
    assert lim.attempt("b", 201) == 0  # ... but not for a client that logged in before


def test_api_key_compare() -> None:
    assert auth.api_key_ok("abc", "abc")
    assert not auth.api_key_ok("abd", "abc")
    assert not auth.api_key_ok("", "")  # no key configured: none accepted
    assert not auth.api_key_ok(None, "abc")
