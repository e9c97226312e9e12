"""Signed clips and `pisentry verify`, run as a user would, offline with the
public key: untouched clips pass; one flipped byte, a deleted clip and an
inserted one are each named."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from common.clipchain import KEY_FILE, PUBLIC_FILE, ClipSigner, proof_path
from common.paths import Home
from tests.support import pisentry


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Home, Path, list[Path]]:
    """Five clips in day folders, signed in order by the recorder's signer."""
    home = Home(tmp_path / "home").ensure()
    nas = tmp_path / "nas"
    signer = ClipSigner(home.state_dir, "cam1")
    clips = []
    for i in range(5):
        clip = nas / "2026" / "12" / f"0{1 + i // 3}" / f"cam1-2026120{1 + i // 3}-10000{i}.mp4"
        clip.parent.mkdir(parents=True, exist_ok=True)
        clip.write_bytes(os.urandom(50_000 + i))
        signer.sign(clip)
        clips.append(clip)
    return home, nas, clips


def verify(home: Home, *paths: Path) -> tuple[int, list[str]]:
    r = pisentry("verify", "--key", str(home.state_dir / PUBLIC_FILE), *map(str, paths),
                 home=home)
    return r.returncode, r.stdout.splitlines()


def test_untouched_clips_pass(signed: tuple[Home, Path, list[Path]]) -> None:
    home, nas, clips = signed
    code, out = verify(home, nas)
    assert code == 0, out
    assert out == ["OK: 5 clip(s) intact (cam1 seq 0..4), 0 problem(s)"]
    assert verify(home, clips[2], proof_path(clips[2]))[0] == 0  # one clip alone
    key = home.state_dir / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_one_flipped_byte_is_named(signed: tuple[Home, Path, list[Path]]) -> None:
    home, nas, clips = signed
    data = bytearray(clips[1].read_bytes())
    data[20_000] ^= 0x01
    clips[1].write_bytes(bytes(data))
    code, out = verify(home, nas)
    assert code == 1
    assert out[:-1] == [f"FAIL changed: {clips[1]} (its SHA-256 is not the signed one)"]
    assert out[-1].startswith("FAILED: 4 clip(s) intact")


def test_a_deleted_clip_is_named_with_or_without_its_proof(
        signed: tuple[Home, Path, list[Path]]) -> None:
    home, nas, clips = signed
    clips[2].unlink()
    code, out = verify(home, nas)
    assert code == 1 and out[0] == (f"FAIL removed: {clips[2]} (seq 2; its proof is still "
                                    "there)")
    proof_path(clips[2]).unlink()
    code, out = verify(home, nas)
    assert code == 1
    assert out[0] == (f"FAIL removed from the chain: 1 clip(s) of cam1 between "
                      f"{clips[1].name} (seq 1) and {clips[3].name} (seq 3), the last of them "
                      f"{clips[2].name}")


def test_an_inserted_clip_is_named_even_with_a_copied_proof(
        signed: tuple[Home, Path, list[Path]]) -> None:
    home, nas, clips = signed
    fake = clips[0].with_name("cam1-20261201-100000-1.mp4")
    fake.write_bytes(os.urandom(50_000))
    code, out = verify(home, nas)
    assert code == 1 and out[0] == f"FAIL added or unsigned: {fake} (no valid proof)"
    shutil.copy(proof_path(clips[0]), proof_path(fake))  # a real proof, of another clip
    code, out = verify(home, nas)
    assert f"FAIL moved proof: {proof_path(fake)} is the proof of {clips[0].name}" in out
    # an edited proof (the hash of the fake put in) no longer carries a valid signature
    proof = json.loads(proof_path(clips[0]).read_text())
    proof.update(name=fake.name, sha256=hashlib.sha256(fake.read_bytes()).hexdigest())
    proof_path(fake).write_text(json.dumps(proof))
    code, out = verify(home, nas)
    assert f"FAIL forged or damaged proof: {proof_path(fake)} (signature does not match)" in out
    assert code == 1


def test_another_cameras_key_passes_nothing(signed: tuple[Home, Path, list[Path]],
                                            tmp_path: Path) -> None:
    nas = signed[1]
    other = Home(tmp_path / "other").ensure()
    ClipSigner(other.state_dir, "cam1")
    code, out = verify(other, nas)
    assert code == 1 and len([x for x in out if "forged" in x]) == 5


def test_a_missing_key_is_one_clear_line(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    r = pisentry("verify", "--key", str(tmp_path / "nope.pub"), str(tmp_path), home=home)
    assert r.returncode == 2 and "nope.pub: not a public key" in r.stderr


def test_the_chain_continues_across_a_restart_of_the_signer(tmp_path: Path) -> None:
    home = Home(tmp_path / "home").ensure()
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.write_bytes(b"first")
    b.write_bytes(b"second")
    first = ClipSigner(home.state_dir, "cam1").sign(a)
    second = ClipSigner(home.state_dir, "cam1").sign(b)
    assert (second.seq, second.prev_sha256, second.prev_name) == (1, first.sha256, "a.mp4")


def test_record_signs_in_a_child_and_a_damaged_key_is_one_clear_line(tmp_path: Path) -> None:
    from common.clipchain import ProofError, sign_in_child

    home = Home(tmp_path / "home").ensure()
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"clip")
    assert sign_in_child(home.state_dir, "cam1") is None  # the key made
    proof = sign_in_child(home.state_dir, "cam1", clip)
    assert proof is not None and proof.seq == 0 and proof_path(clip).exists()
    assert verify(home, clip)[0] == 0  # its proof beside it is found
    (home.state_dir / KEY_FILE).write_text("not a key")
    with pytest.raises(ProofError, match="clip signing: "):
        sign_in_child(home.state_dir, "cam1")
