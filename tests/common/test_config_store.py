"""config.toml edited as a user's file: comments and layout kept, nothing
written while invalid, the versions kept with who saved them."""

from __future__ import annotations

import difflib
import time
from pathlib import Path

from common.config_store import ConfigStore, changed_sections
from tests.support import new_home, pisentry

USER_FILE = """\
# my camera, set up by hand
[general]
camera = "porch"   # the name in alerts

[capture]
# the porch is dark: lower fps
fps = 10
width = 640
height = 480

[notify.telegram]
cooldown_seconds = 60
"""


def store_with(text: str) -> tuple[ConfigStore, Path]:
    home = new_home()
    path = home.config_file
    path.write_text(text)
    return ConfigStore(path, home), path


def test_a_change_keeps_comments_and_layout_and_touches_one_line() -> None:
    store, path = store_with(USER_FILE)
    proposal = store.propose({"capture.fps": 12.5, "detect.min_trigger_area": 0.01})
    assert proposal.errors == [] and proposal.config is not None
    store.save(proposal.text, "admin from 127.0.0.1", ["capture", "detect"])
    after = path.read_text()
    diff = [d for d in difflib.unified_diff(USER_FILE.splitlines(), after.splitlines(),
                                            lineterm="", n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert diff[0] == "-fps = 10" and "+fps = 12.5" in diff
    assert "+[detect]" in diff and "+min_trigger_area = 0.01" in diff
    assert len([d for d in diff if d.startswith("-")]) == 1
    for line in ("# my camera, set up by hand", 'camera = "porch"   # the name in alerts',
                 "# the porch is dark: lower fps", "[notify.telegram]"):
        assert line in after
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".config.toml")] == []


def test_removing_a_key_returns_it_to_its_default() -> None:
    store, _ = store_with(USER_FILE)
    proposal = store.propose({"capture.fps": None, "record.nothing_here": None})
    assert proposal.config is not None and proposal.config.capture.fps is None
    assert "fps = " not in proposal.text and "# the porch is dark" in proposal.text


def test_an_invalid_change_gives_check_configs_words_and_nothing_is_written() -> None:
    store, path = store_with(USER_FILE)
    before = path.read_bytes()
    proposal = store.propose({"capture.fps": 0, "capture.width": 641})
    assert proposal.config is None
    keys = dict(proposal.errors)
    assert keys["capture.fps"] == "capture.fps: Input should be greater than 0"
    assert keys["capture.width"].startswith("capture.width: Value error, 641 is odd")
    assert path.read_bytes() == before
    # the same words as `pisentry check-config` on that file
    bad = path.parent / "bad.toml"
    bad.write_text(store.propose({"capture.fps": 0}).text)
    printed = pisentry("check-config", str(bad), home=store_home(store)).stderr
    assert keys["capture.fps"] in printed


def store_home(store: ConfigStore):  # type: ignore[no-untyped-def]
    from common.paths import Home
    return Home(store.path.parent)


def test_history_keeps_the_last_versions_with_who_and_when() -> None:
    store, path = store_with(USER_FILE)
    t0 = time.time()
    for fps in range(1, 9):
        store.save(store.propose({"capture.fps": fps}).text, f"user{fps}", ["capture"])
    versions = store.history()
    assert len(versions) == 5
    assert [v.by for v in versions] == ["user8", "user7", "user6", "user5", "user4"]
    assert versions[0].path.read_text() == path.read_text()
    assert "fps = 4" in versions[-1].path.read_text()
    assert all(v.saved_at >= t0 and v.sections == ["capture"] for v in versions)


def test_the_hand_written_file_is_kept_before_the_first_save() -> None:
    store, _ = store_with(USER_FILE)
    store.save(store.propose({"capture.fps": 3}).text, "admin", ["capture"])
    oldest = store.history()[-1]
    assert oldest.path.read_text() == USER_FILE and oldest.sections == []


def test_no_file_yet_makes_one() -> None:
    home = new_home()
    store = ConfigStore(home.config_file, home)
    proposal = store.propose({"notify.telegram.cooldown_seconds": 5})
    store.save(proposal.text, "admin", ["notify"])
    assert home.config_file.read_text().strip() == "[notify.telegram]\ncooldown_seconds = 5"


def test_changed_sections_sees_secrets_too() -> None:
    store, _ = store_with(USER_FILE)
    old = store.current().config
    new = store.propose({"notify.mqtt.password": "x", "capture.fps": 10}).config
    assert old is not None and new is not None
    assert changed_sections(old, new) == ["notify"]
