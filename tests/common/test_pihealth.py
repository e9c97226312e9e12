"""Pi health from real files: the throttled word, temperature, memory, disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import parse_config
from common.pihealth import Problems, parse_throttled, read_health

MEMINFO = "MemTotal:        3884360 kB\nMemFree:  100 kB\nMemAvailable:    {avail} kB\n"


def files(tmp_path: Path, throttled: str = "0", temp: str = "45000", avail: int = 2_000_000
          ) -> dict[str, str]:
    (tmp_path / "throttled").write_text(throttled + "\n")
    (tmp_path / "temp").write_text(temp + "\n")
    (tmp_path / "meminfo").write_text(MEMINFO.format(avail=avail))
    return {"throttled_path": str(tmp_path / "throttled"), "thermal_path": str(tmp_path / "temp"),
            "meminfo_path": str(tmp_path / "meminfo")}


@pytest.mark.parametrize("text, value", [("0", 0), ("50005\n", 0x50005),
                                         ("throttled=0x50005", 0x50005), ("0x80008", 0x80008)])
def test_the_throttled_word_reads_as_sysfs_and_vcgencmd_write_it(text: str, value: int) -> None:
    assert parse_throttled(text) == value


def test_a_reading_names_the_flags_now_and_since_boot(tmp_path: Path) -> None:
    cfg = parse_config({"health": files(tmp_path, throttled="50005", temp="61234",
                                        avail=500_000)}).health
    r = read_health(cfg, tmp_path)
    assert r.flags_now == ["under-voltage", "throttled"]
    assert r.flags_since_boot == ["under-voltage", "throttled"]
    assert r.temperature == pytest.approx(61.234)
    assert r.mem_total == 3884360 * 1024 and r.mem_available == 500_000 * 1024
    assert r.disk_free is not None and r.disk_total is not None and r.disk_free <= r.disk_total
    assert r.view()["throttled_hex"] == "0x50005"


def test_missing_or_garbled_files_read_as_unknown(tmp_path: Path) -> None:
    raw = files(tmp_path, throttled="not hex", temp="hot")
    raw["meminfo_path"] = str(tmp_path / "absent")
    r = read_health(parse_config({"health": raw}).health, tmp_path / "no-such-disk")
    assert (r.throttled, r.temperature, r.mem_available, r.disk_free) == (None, None, None, None)


def test_each_condition_raises_once_and_clears_once(tmp_path: Path) -> None:
    raw = files(tmp_path)
    cfg = parse_config({"health": raw}).health
    problems = Problems(cfg)
    assert problems.update(read_health(cfg, tmp_path)) == []
    (tmp_path / "throttled").write_text("50005")
    (tmp_path / "temp").write_text("82000")
    first = problems.update(read_health(cfg, tmp_path))
    assert [(t.condition, t.raised) for t in first] == [("power", True), ("temperature", True)]
    assert "under-voltage" in first[0].text and "82.0" in first[1].text
    assert problems.update(read_health(cfg, tmp_path)) == []  # still on: no second alert
    # the now-bits clear (since-boot bits stay); 77 C is within the margin: still hot
    (tmp_path / "throttled").write_text("50000")
    (tmp_path / "temp").write_text("77000")
    second = problems.update(read_health(cfg, tmp_path))
    assert [(t.condition, t.raised) for t in second] == [("power", False)]
    assert second[0].text.startswith("all clear")
    (tmp_path / "temp").write_text("60000")
    assert [(t.condition, t.raised) for t in problems.update(read_health(cfg, tmp_path))] == [
        ("temperature", False)]
    assert problems.active == {}


def test_low_memory_and_a_full_disk_are_problems(tmp_path: Path) -> None:
    raw = files(tmp_path, avail=10_000)  # 10 MB available
    cfg = parse_config({"health": {**raw, "disk_free_alert_mb": 10_000_000}}).health
    out = Problems(cfg).update(read_health(cfg, tmp_path))
    assert {t.condition for t in out} == {"disk", "memory"}
