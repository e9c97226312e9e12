"""Clips that prove themselves: a SHA-256 and an Ed25519 signature per
finished clip, each chained to the previous clip's hash.

The proof of ``CLIP.mp4`` is ``CLIP.mp4.sig.json`` beside it (locally and on
the NAS, where backups copy it next to the clip). It holds the camera, the
clip's place in the chain (``seq``, counting from 0 per camera key), its file
name, size and SHA-256, the SHA-256 and name of the clip signed before it,
and a signature over all of that. So, offline and with the public key only:

- a clip changed by one byte no longer matches its hash;
- a clip removed leaves a gap in ``seq`` (the next proof names it), or, when
  its proof stayed, a proof without its clip;
- a clip added has no valid proof, and cannot get one without the secret key;
- a proof copied from another clip names another file or hash.

What this cannot tell: the newest clips removed together with their proofs
(nothing after them refers to them), and clips older than the first one
present (retention deletes the oldest on purpose). ``verify`` says which
stretch of the chain it checked.

``ClipSigner`` (record, the only writer) keeps the secret key and the chain's
head in the state folder; ``verify`` (``pisentry verify``) is the reader.

Memory: the cryptography package costs about 12 MB in a process (11.6 MB PSS,
4.8 MB of it private dirty, measured here), more than the whole of ir. So
record signs in a throwaway child (``sign_in_child``, ~0.1 s per clip, a few
clips a day) and never imports it; this module imports it only where a key
is used.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.paths import write_json_atomically

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SUFFIX = ".sig.json"
CLIP_SUFFIXES = (".mp4",)
KEY_FILE = "clip-signing.key"
PUBLIC_FILE = "clip-signing.pub"
CHAIN_FILE = "clip-chain.json"
VERSION = 1
CHUNK = 1 << 20


class ProofError(ValueError):
    """A proof file that cannot be read or is not one."""


def proof_path(clip: Path) -> Path:
    return clip.with_name(clip.name + SUFFIX)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Proof:
    camera: str
    seq: int
    name: str
    size: int
    sha256: str
    prev_sha256: str  # "" for the first clip of the chain
    prev_name: str
    signed_at: float
    signature: str = ""  # base64 Ed25519 over ``signed_bytes``

    def signed_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "signature"}
        body["v"] = VERSION
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def check(self, key: Ed25519PublicKey) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def read(cls, path: Path) -> Proof:
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or raw.pop("v", None) != VERSION:
                raise ProofError(f"{path.name}: not a version {VERSION} clip proof")
            proof = cls(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise ProofError(f"{path.name}: unreadable proof ({exc})") from None
        types: dict[str, type | tuple[type, ...]] = {
            "camera": str, "seq": int, "name": str, "size": int, "sha256": str,
            "prev_sha256": str, "prev_name": str, "signed_at": (int, float), "signature": str}
        for name, kind in types.items():
            if not isinstance(getattr(proof, name), kind):
                raise ProofError(f"{path.name}: {name} is not a {kind}")
        return proof


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ProofError(f"{path}: not a public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError(f"{path}: not an Ed25519 public key")
    return key


class ClipSigner:
    """Signs finished clips in order. Makes its key pair on first use
    (``state/clip-signing.key``, 0600; the public half beside it to copy off
    the camera). Not thread-safe: record's loop is its only caller."""

    def __init__(self, state_dir: Path, camera: str) -> None:
        self.camera = camera
        self.key_file = state_dir / KEY_FILE
        self.public_file = state_dir / PUBLIC_FILE
        self.chain_file = state_dir / CHAIN_FILE
        self.key = self._load_or_make_key()
        self.head = self._load_head()

    def _load_or_make_key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self.key_file.exists():
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ProofError(f"{self.key_file}: not an Ed25519 private key")
        else:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                os.fsync(f.fileno())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        if not self.public_file.exists() or self.public_file.read_bytes() != public:
            self.public_file.write_bytes(public)
        return key

    def _load_head(self) -> dict[str, Any]:
        try:
            head = json.loads(self.chain_file.read_text())
            if isinstance(head, dict) and isinstance(head.get("seq"), int):
                return head
        except (OSError, ValueError):
            pass
        return {"seq": -1, "sha256": "", "name": ""}

    def sign(self, clip: Path) -> Proof:
        """Hash ``clip``, sign it as the chain's next link, write its proof
        beside it and move the chain's head (both atomically: a power cut
        leaves the old head or the new one)."""
        proof = Proof(self.camera, self.head["seq"] + 1, clip.name, clip.stat().st_size,
                      sha256_of(clip), self.head["sha256"], self.head["name"],
                      round(time.time(), 3))
        signature = base64.b64encode(self.key.sign(proof.signed_bytes())).decode()
        proof = Proof(**{**asdict(proof), "signature": signature})
        write_json_atomically(proof_path(clip), {"v": VERSION, **asdict(proof)})
        self.head = {"seq": proof.seq, "sha256": proof.sha256, "name": proof.name}
        write_json_atomically(self.chain_file, self.head)
        return proof


def sign_in_child(state_dir: Path, camera: str, clip: Path | None = None,
                  timeout: float = 120.0) -> Proof | None:
    """``ClipSigner(state_dir, camera).sign(clip)`` in a child process (the
    key made or checked when ``clip`` is None); ``ProofError`` with the
    child's one line when it fails. The caller runs one at a time: the chain
    head is the child's to move."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "common.clipchain", "sign", str(state_dir), camera,
           *([str(clip)] if clip is not None else [])]
    try:
        child = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                               check=False)
    except subprocess.TimeoutExpired:
        raise ProofError(f"signing {clip} took over {timeout:.0f} s") from None
    if child.returncode != 0:
        raise ProofError(child.stderr.strip().splitlines()[-1] if child.stderr.strip()
                         else f"signer exited {child.returncode}")
    if clip is None:
        return None
    raw = json.loads(child.stdout)
    raw.pop("v", None)
    return Proof(**raw)


def _main(argv: list[str]) -> int:
    """``python -m common.clipchain sign STATE_DIR CAMERA [CLIP]``: what
    ``sign_in_child`` runs; prints the proof as JSON."""
    import sys

    if len(argv) not in (3, 4) or argv[0] != "sign":
        print("usage: python -m common.clipchain sign STATE_DIR CAMERA [CLIP]", file=sys.stderr)
        return 64
    try:
        signer = ClipSigner(Path(argv[1]), argv[2])
        if len(argv) == 4:
            proof = signer.sign(Path(argv[3]))
            print(json.dumps({"v": VERSION, **asdict(proof)}))
    except (OSError, ValueError) as exc:
        print(f"clip signing: {exc}", file=sys.stderr)
        return 2
    return 0


@dataclass
class Report:
    checked: int = 0  # clips whose proof and hash both hold
    problems: list[str] = field(default_factory=list)
    chains: dict[str, tuple[int, int]] = field(default_factory=dict)  # camera -> seq span

    @property
    def ok(self) -> bool:
        return not self.problems


def _files(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file())
        else:
            out.append(p)
            if p.suffix in CLIP_SUFFIXES and proof_path(p).exists():
                out.append(proof_path(p))  # a clip named alone is checked with its proof
    return sorted(set(out))


def verify(paths: Iterable[Path], key: Ed25519PublicKey) -> Report:
    """Check clips and their proofs under ``paths`` (files or folders)."""
    report = Report()
    files = _files(paths)
    clips = {f for f in files if f.suffix in CLIP_SUFFIXES and not f.name.startswith(".")}
    proofs: dict[str, list[tuple[Proof, Path]]] = {}
    proven: set[Path] = set()
    for f in files:
        if not f.name.endswith(SUFFIX):
            continue
        clip = f.with_name(f.name[:-len(SUFFIX)])
        try:
            proof = Proof.read(f)
        except ProofError as exc:
            report.problems.append(f"damaged proof: {exc}")
            continue
        if not proof.check(key):
            report.problems.append(f"forged or damaged proof: {f} (signature does not match)")
            continue
        if proof.name != clip.name:
            report.problems.append(f"moved proof: {f} is the proof of {proof.name}")
            continue
        proofs.setdefault(proof.camera, []).append((proof, clip))
        if not clip.exists():
            report.problems.append(f"removed: {clip} (seq {proof.seq}; its proof is still "
                                   "there)")
            continue
        proven.add(clip)
        if clip.stat().st_size != proof.size or sha256_of(clip) != proof.sha256:
            report.problems.append(f"changed: {clip} (its SHA-256 is not the signed one)")
            continue
        report.checked += 1
    for clip in sorted(clips - proven):
        report.problems.append(f"added or unsigned: {clip} (no valid proof)")
    for camera, links in sorted(proofs.items()):
        links.sort(key=lambda pc: pc[0].seq)
        report.chains[camera] = (links[0][0].seq, links[-1][0].seq)
        for (prev, prev_clip), (proof, clip) in itertools.pairwise(links):
            if proof.seq == prev.seq:
                report.problems.append(f"two clips signed as {camera} seq {proof.seq}: "
                                       f"{prev_clip} and {clip}")
            elif proof.seq > prev.seq + 1:
                missing = proof.seq - prev.seq - 1
                report.problems.append(
                    f"removed from the chain: {missing} clip(s) of {camera} between "
                    f"{prev_clip.name} (seq {prev.seq}) and {clip.name} (seq {proof.seq}), "
                    f"the last of them {proof.prev_name}")
            elif proof.prev_sha256 != prev.sha256:
                report.problems.append(f"broken chain: {clip} does not follow {prev_clip}")
    return report


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
