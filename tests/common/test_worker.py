"""The worker base's hooks: an Inbox a thread fills, woken on like a socket."""

from __future__ import annotations

import threading
import time

from common.bus import Bus
from common.config import parse_config
from common.paths import Home
from common.worker import Inbox, Worker


class Counting(Worker):
    name = "detect"  # any endpoint name: this test binds it

    def setup(self) -> None:
        self.inbox: Inbox[int] = Inbox(keep=100)
        self.got: list[tuple[int, float]] = []
        self.wait_on(self.inbox, self.take)

    def take(self, item: int) -> None:
        if item < 0:
            raise ValueError("a bad item")
        self.got.append((item, time.monotonic()))


def test_items_from_a_thread_wake_the_loop_and_a_bad_one_is_counted(tmp_path) -> None:
    home = Home(tmp_path / "h").ensure()
    config = parse_config({})
    worker = Counting(config, home, Bus(config, home))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not hasattr(worker, "got") and time.monotonic() < deadline:
            time.sleep(0.01)
        lags = []
        for i in range(20):
            sent = time.monotonic()
            worker.inbox.put(i)
            while len(worker.got) <= i and time.monotonic() < deadline:
                time.sleep(0.001)
            lags.append(worker.got[i][1] - sent)
            time.sleep(0.02)
        worker.inbox.put(-1)
        while worker.counters["errors"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.request_stop()
        thread.join(5)
    assert [i for i, _ in worker.got] == list(range(20))
    # woken by the item, not found by the 0.1 s poll timeout
    assert sorted(lags)[10] < 0.05, lags
    assert worker.counters["errors"] == 1 and "a bad item" in worker.counters["last_error"]


def test_an_inbox_keeps_the_newest() -> None:
    inbox: Inbox[int] = Inbox(keep=2)
    for i in range(5):
        inbox.put(i)
    assert inbox.wait(0.1) and inbox.take() == [3, 4] and inbox.replaced == 3
    assert not inbox.wait(0.05) and inbox.take() == []
    inbox.close()
