"""Clip encryption so the NAS never sees plain video.

A public key encrypts a random symmetric key per file; only
the holder of the private key (kept off the camera) can restore a clip. The
data is AES-256-GCM in 1 MiB chunks rather than one Fernet token, so a Pi
encrypts a long clip in bounded memory, and a file cut short is detected.

File layout::

    MAGIC (8 bytes "PISENC1\\n")
    u16  length of the wrapped key, then the wrapped key (RSA-OAEP-SHA256 of
         the 32-byte AES key)
    8 bytes nonce prefix (random per file)
    chunks: u32 length, then AES-GCM(chunk) with nonce = prefix + u32 index and
            associated data = b"\\x01" on the last chunk, b"\\x00" otherwise

The final-chunk flag is authenticated, so a truncated file (a chunk boundary
that looks like the end) is refused rather than silently shortened.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"PISENC1\n"
CHUNK = 1 << 20
SUFFIX = ".enc"
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                     label=None)


class CryptoError(ValueError):
    """A key or an encrypted file that cannot be used; the message says which."""


def load_public_key(path: str | Path) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise CryptoError(f"cannot read public key {path}: {exc.strerror}") from None
    except ValueError:
        raise CryptoError(f"{path} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise CryptoError(f"{path}: need an RSA public key of at least 2048 bits")
    return key


def load_private_key(path: str | Path, password: bytes | None = None) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=password)
    except OSError as exc:
        raise CryptoError(f"cannot read private key {path}: {exc.strerror}") from None
    except TypeError:
        raise CryptoError(f"{path} is protected by a password; give it") from None
    except ValueError:
        raise CryptoError(f"{path} is not a PEM private key (or the password is wrong)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CryptoError(f"{path}: need an RSA private key")
    return key


def encrypted_size(plain_size: int, key: rsa.RSAPublicKey) -> int:
    """Exact size of the encrypted form, so an upload can be checked by size."""
    chunks = max(1, -(-plain_size // CHUNK))
    return len(MAGIC) + 2 + key.key_size // 8 + 8 + chunks * (4 + 16) + plain_size


def encrypt_stream(src: BinaryIO, dst: BinaryIO, key: rsa.RSAPublicKey,
                   length: int | None = None) -> int:
    """Encrypt ``length`` bytes of ``src`` (all of it when None) into ``dst``.
    Returns the bytes written."""
    data_key = AESGCM.generate_key(bit_length=256)
    wrapped = key.encrypt(data_key, _OAEP)
    prefix = os.urandom(8)
    aes = AESGCM(data_key)
    written = dst.write(MAGIC + struct.pack(">H", len(wrapped)) + wrapped + prefix)
    remaining = length
    index = 0
    chunk = src.read(CHUNK if remaining is None else min(CHUNK, remaining))
    while True:
        if remaining is not None:
            remaining -= len(chunk)
        following = b""
        if remaining is None or remaining > 0:
            following = src.read(CHUNK if remaining is None else min(CHUNK, remaining))
        last = not following
        sealed = aes.encrypt(prefix + struct.pack(">I", index), chunk,
                             b"\x01" if last else b"\x00")
        written += dst.write(struct.pack(">I", len(sealed)) + sealed)
        if last:
            return written
        chunk, index = following, index + 1


def _read_exact(src: BinaryIO, n: int, what: str) -> bytes:
    data = src.read(n)
    if len(data) != n:
        raise CryptoError(f"encrypted file is cut short (in the {what})")
    return data


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: rsa.RSAPrivateKey) -> int:
    """Decrypt a file made by ``encrypt_stream``; returns the plain bytes written."""
    if src.read(len(MAGIC)) != MAGIC:
        raise CryptoError("not a pisentry encrypted file (bad magic)")
    (wrapped_len,) = struct.unpack(">H", _read_exact(src, 2, "header"))
    wrapped = _read_exact(src, wrapped_len, "header")
    try:
        data_key = key.decrypt(wrapped, _OAEP)
    except ValueError:
        raise CryptoError("this private key cannot open the file (wrong key)") from None
    prefix = _read_exact(src, 8, "header")
    aes = AESGCM(data_key)
    written = 0
    index = 0
    while True:
        head = src.read(4)
        if not head:
            raise CryptoError("encrypted file is cut short (no final chunk)")
        if len(head) < 4:
            raise CryptoError("encrypted file is cut short (in a chunk header)")
        (size,) = struct.unpack(">I", head)
        sealed = _read_exact(src, size, "chunk")
        nonce = prefix + struct.pack(">I", index)
        try:
            plain = aes.decrypt(nonce, sealed, b"\x00")
            last = False
        except InvalidTag:
            try:
                plain = aes.decrypt(nonce, sealed, b"\x01")
            except InvalidTag:
                raise CryptoError(f"chunk {index} is corrupt or was tampered with") from None
            last = True
        written += dst.write(plain)
        if last:
            if src.read(1):
                raise CryptoError("data after the final chunk")
            return written
        index += 1


def decrypt_file(src: str | Path, dst: str | Path, key: rsa.RSAPrivateKey) -> int:
    """Decrypt ``src`` into ``dst`` (written to a temp name, renamed when whole)."""
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".part")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            size = decrypt_stream(fin, fout, key)
        os.replace(tmp, dst)
        return size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def generate_keypair(bits: int = 3072) -> tuple[bytes, bytes]:
    """(private PEM, public PEM) for ``pisentry backup-keygen``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem
