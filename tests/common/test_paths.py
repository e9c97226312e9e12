"""Small state files written so that a crash never leaves half of one."""

import json

import pytest

from common.paths import write_json_atomically


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state" / "alerted-events.json"
    write_json_atomically(path, ["ev1"])
    with pytest.raises(TypeError):
        write_json_atomically(path, ["ev2", object()])  # fails half-way through the dump
    assert json.loads(path.read_text()) == ["ev1"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["alerted-events.json"]
