"""Backup encryption: round trips, exact sizes, wrong key, tampering; `pisentry decrypt`."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.notify import crypto

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    private, public = crypto.generate_keypair(2048)
    (folder / "private.pem").write_bytes(private)
    (folder / "public.pem").write_bytes(public)
    other, _ = crypto.generate_keypair(2048)
    (folder / "other.pem").write_bytes(other)
    return folder / "public.pem", folder / "private.pem", folder / "other.pem"


@pytest.mark.parametrize("size", [0, 1, crypto.CHUNK, crypto.CHUNK * 2 + 12345])
def test_round_trip_with_exact_size(keys: tuple[Path, Path, Path], size: int) -> None:
    public = crypto.load_public_key(keys[0])
    private = crypto.load_private_key(keys[1])
    plain = os.urandom(size)
    sealed = io.BytesIO()
    written = crypto.encrypt_stream(io.BytesIO(plain), sealed, public)
    assert written == len(sealed.getvalue()) == crypto.encrypted_size(size, public)
    assert size < 64 or plain[:64] not in sealed.getvalue()
    out = io.BytesIO()
    assert crypto.decrypt_stream(io.BytesIO(sealed.getvalue()), out, private) == size
    assert out.getvalue() == plain


def test_a_slice_of_a_file_encrypts_alone(keys: tuple[Path, Path, Path]) -> None:
    public, private = crypto.load_public_key(keys[0]), crypto.load_private_key(keys[1])
    src = io.BytesIO(b"0123456789" * 1000)
    src.seek(100)
    sealed = io.BytesIO()
    crypto.encrypt_stream(src, sealed, public, length=250)
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(sealed.getvalue()), out, private)
    assert out.getvalue() == (b"0123456789" * 1000)[100:350]


def test_wrong_key_truncation_and_tampering_are_named(keys: tuple[Path, Path, Path]) -> None:
    public = crypto.load_public_key(keys[0])
    sealed = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(os.urandom(crypto.CHUNK + 10)), sealed, public)
    data = sealed.getvalue()
    with pytest.raises(crypto.CryptoError, match="wrong key"):
        crypto.decrypt_stream(io.BytesIO(data), io.BytesIO(), crypto.load_private_key(keys[2]))
    private = crypto.load_private_key(keys[1])
    # Cut at the chunk boundary: the first chunk alone looks complete but is not final.
    first_chunk_end = len(data) - (4 + 16 + 10)
    with pytest.raises(crypto.CryptoError, match="cut short"):
        crypto.decrypt_stream(io.BytesIO(data[:first_chunk_end]), io.BytesIO(), private)
    flipped = bytearray(data)
    flipped[-5] ^= 1
    with pytest.raises(crypto.CryptoError, match="tampered"):
        crypto.decrypt_stream(io.BytesIO(bytes(flipped)), io.BytesIO(), private)
    with pytest.raises(crypto.CryptoError, match="bad magic"):
        crypto.decrypt_stream(io.BytesIO(b"ftypmp42" + data), io.BytesIO(), private)


def test_unusable_public_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(crypto.CryptoError, match="not a PEM public key"):
        crypto.load_public_key(bad)


def _pisentry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "common.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_pisentry_decrypt_restores_a_clip(keys: tuple[Path, Path, Path], tmp_path: Path
                                          ) -> None:
    plain = os.urandom(300_000)
    enc = tmp_path / "clip.mp4.enc"
    with open(enc, "wb") as f:
        crypto.encrypt_stream(io.BytesIO(plain), f, crypto.load_public_key(keys[0]))
    done = _pisentry("decrypt", str(enc), "--key", str(keys[1]))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "clip.mp4").read_bytes() == plain
    wrong = _pisentry("decrypt", str(enc), "--key", str(keys[2]), "-o", str(tmp_path / "x.mp4"))
    assert wrong.returncode == 2
    assert wrong.stderr.strip().count("\n") == 0 and "wrong key" in wrong.stderr
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "x.mp4.part").exists()
