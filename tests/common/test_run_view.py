"""common.run_view: the part of a validated config `pisentry status` reads
without pydantic, kept only for the exact file it came from."""

from __future__ import annotations

from pathlib import Path

from common import run_view
from common.config import load_config
from tests.support import new_home, write_config


def test_the_view_holds_for_the_same_file_only():
    home = new_home()
    path, _ = write_config(home, {"general": {"camera": "porch", "services": ["capture"]},
                                  "bus": {"frames_hwm": 3}})
    run_view.save(load_config(path, home), home, str(path))
    view = run_view.load(str(path), home)
    assert view is not None
    assert (view.general.camera, view.general.services) == ("porch", ["capture"])
    assert (view.bus.frames_hwm, view.bus.endpoints) == (3, {})
    other, _ = write_config(home, {"general": {"camera": "yard"}}, "other.toml")
    assert run_view.load(str(other), home) is None  # another file: validated
    assert run_view.load(None, home) is not None  # the same file: $PISENTRY_HOME/config.toml
    path.write_text(path.read_text().replace("porch", "gate"))
    assert run_view.load(str(path), home) is None  # changed: validated


def test_the_defaults_without_a_file_and_nothing_kept_for_curve_endpoints(tmp_path: Path):
    home = new_home()
    run_view.save(load_config(None, home), home, None)
    view = run_view.load(None, home)
    assert view is not None and view.general.camera == "cam1"
    write_config(home, {"general": {"camera": "now-a-file"}})
    assert run_view.load(None, home) is None  # $PISENTRY_HOME/config.toml appeared

    path, config = write_config(home, {"bus": {"endpoints": {"capture": "tcp://10.0.0.2:5555"}}},
                                "tcp.toml")
    run_view.save(config, home, str(path))
    assert not (home.run_dir / run_view.FILE).exists()  # CURVE keys stay off the disk
    assert run_view.load(str(path), home) is None
