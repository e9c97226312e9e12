"""A whole pisentry instance under supervisord with real peers, per test module."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from common.config import Config, parse_config
from common.paths import Home
from tests.notify.peers import MOSQUITTO, SSHD, have
from tests.support import Pipeline, pisentry, running_pipeline
from tests.system.harness import (
    API_HEADERS,
    HAVE_DETECT,
    BusWatch,
    Peers,
    StandInDetect,
    free_port,
    system_config,
    wait_until,
)

pytestmark = pytest.mark.skipif(not (have(SSHD) and have(MOSQUITTO)),
                                reason="sshd and mosquitto are needed (./test.sh installs them)")


@dataclass
class System:
    pipe: Pipeline
    peers: Peers
    watch: BusWatch
    raw: dict[str, Any]
    config: Config
    port: int
    stand_in: StandInDetect | None = None

    @property
    def home(self) -> Home:
        return self.pipe.home

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> tuple[int, str]:
        r = pisentry("status", "--json", "--config", str(self.pipe.config_path), home=self.home)
        return r.returncode, r.stdout

    def api_status(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/api/status", headers=API_HEADERS, timeout=3).json()

    def clips(self) -> list[sqlite3.Row]:
        db = sqlite3.connect(f"file:{self.home.catalogue}?mode=ro", uri=True, timeout=5)
        db.row_factory = sqlite3.Row
        try:
            return db.execute("SELECT * FROM clips ORDER BY start").fetchall()
        finally:
            db.close()

    def clip_events(self) -> dict[str, list[str]]:
        """event id -> the file names of its clips."""
        db = sqlite3.connect(f"file:{self.home.catalogue}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT e.event_id, c.path FROM clip_events e "
                              "JOIN clips c ON c.id = e.clip_id").fetchall()
            rows += db.execute("SELECT event_id, path FROM clips WHERE event_id != ''"
                               ).fetchall()
        finally:
            db.close()
        out: dict[str, list[str]] = {}
        for event, path in rows:
            name = Path(path).name
            if name not in out.setdefault(event, []):
                out[event].append(name)
        return out

    def web_up(self) -> bool:
        try:
            return httpx.get(f"{self.base}/api/status", headers=API_HEADERS,
                             timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


def decodable_frames(path: Path) -> int:
    """Decode every video frame of a clip; raises on a corrupt file."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def system_factory() -> Iterator[Any]:
    made: list[tuple[Any, Peers, BusWatch, StandInDetect | None]] = []

    def make(**sections: dict[str, Any]) -> System:
        peers = Peers().start()
        port = free_port()
        raw = system_config(peers, port, **sections)
        config = parse_config(raw)
        ctx = running_pipeline(raw)
        pipe = ctx.__enter__()
        watch = BusWatch(config, pipe.home).start()
        stand_in = None
        made.append((ctx, peers, watch, stand_in))
        try:
            pipe.wait_healthy(60)
            wait_until(lambda: System(pipe, peers, watch, raw, config, port).web_up(), 30,
                       "the web API")
        except BaseException:
            print(pipe.output())
            raise
        if not HAVE_DETECT:
            stand_in = StandInDetect(config, pipe.home,
                                     raw["capture"]["object_period"]).start()
            made[-1] = (ctx, peers, watch, stand_in)
        return System(pipe, peers, watch, raw, config, port, stand_in)

    yield make
    for ctx, peers, watch, stand_in in reversed(made):
        if stand_in is not None:
            stand_in.stop()
        watch.stop()
        ctx.__exit__(None, None, None)
        peers.stop()
