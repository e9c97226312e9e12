"""A local HTTP server that speaks the Bot API subset pisentry uses.

The real python-telegram-bot client talks to it through ``base_url``. Every
request is recorded (method, form fields, uploaded files, arrival time);
``fail`` makes the next calls of a method answer with an error status (429
with ``retry_after``, 500 ...); ``push_message`` / ``push_button`` queue
updates for ``getUpdates``. Runs aiohttp on its own loop in a thread.

Reusable: system tests import ``FakeTelegram`` from here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    method: str
    fields: dict[str, str]
    files: dict[str, tuple[str, str, bytes]]  # part name -> (filename, content type, data)
    t: float  # time.time() when the request arrived (before the body was read)
    t_done: float = 0.0  # when the body was fully read


@dataclass
class FakeTelegram:
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    fail: dict[str, list[int]] = field(default_factory=dict)
    retry_after: int = 1
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_id: int = 0
    _message_id: int = 0

    def start(self) -> FakeTelegram:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake Telegram server did not start")
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        # Bot API uploads reach 50 MB; aiohttp's default body limit is 1 MiB.
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def _down() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_down(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- test controls ----------------------------------------------------------------
    def push_message(self, chat_id: int, text: str, user_id: int | None = None) -> None:
        """A message in ``chat_id`` from ``user_id`` (default: a private chat,
        where the two are the same; a different user means a group)."""
        user = chat_id if user_id is None else user_id
        with self._lock:
            self._update_id += 1
            self._updates.append({"update_id": self._update_id, "message": {
                "message_id": 1000 + self._update_id, "date": int(time.time()), "text": text,
                "chat": {"id": chat_id, "type": "private" if user == chat_id else "group"},
                "from": {"id": user, "is_bot": False, "first_name": "user"}}})

    def push_button(self, chat_id: int, data: str) -> None:
        with self._lock:
            self._update_id += 1
            self._updates.append({"update_id": self._update_id, "callback_query": {
                "id": f"q{self._update_id}", "chat_instance": "ci", "data": data,
                "from": {"id": chat_id, "is_bot": False, "first_name": "user"},
                "message": {"message_id": 7, "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private"}}}})

    def of(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, n: int = 1, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(method)
            if len(found) >= n:
                return found
            time.sleep(0.01)
        raise AssertionError(f"{n} {method} call(s) expected, got {len(self.of(method))}: "
                             f"{[c.method for c in self.calls]}")

    # -- the server ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        t = time.time()
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, str, bytes]] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                if part.filename:  # type: ignore[union-attr]
                    files[part.name or ""] = (part.filename,  # type: ignore[union-attr]
                                              part.headers.get("Content-Type", ""), bytes(data))
                else:
                    fields[part.name or ""] = bytes(data).decode()
        elif request.content_type == "application/json":
            fields = {k: v if isinstance(v, str) else json.dumps(v)
                      for k, v in (await request.json()).items()}
        else:
            fields = dict(await request.post())  # type: ignore[arg-type]
        with self._lock:
            if method != "getUpdates":
                self.calls.append(Call(method, fields, files, t, time.time()))
            codes = self.fail.get(method)
            code = codes.pop(0) if codes else 200
        if code == 429:
            return web.json_response({"ok": False, "error_code": 429,
                                      "description": "Too Many Requests: retry later",
                                      "parameters": {"retry_after": self.retry_after}},
                                     status=429)
        if code != 200:
            return _error(code, "Internal Server Error" if code >= 500 else "Bad Request")
        if method == "getUpdates":
            return await self._get_updates(fields)
        chat = int(fields.get("chat_id", "0") or 0)
        with self._lock:
            self._message_id += 1
            message: dict[str, Any] = {"message_id": self._message_id, "date": int(t),
                                       "chat": {"id": chat, "type": "private"}}
        if method == "sendPhoto":
            message["photo"] = [{"file_id": "p", "file_unique_id": "p", "width": 1,
                                 "height": 1}]
        elif method == "sendVideo":
            message["video"] = {"file_id": "v", "file_unique_id": "v", "width": 1, "height": 1,
                                "duration": 1}
        elif method == "sendMessage":
            message["text"] = fields.get("text", "")
        elif method in ("answerCallbackQuery", "deleteWebhook"):
            return web.json_response({"ok": True, "result": True})
        elif method == "getMe":
            return web.json_response({"ok": True, "result": {
                "id": 1, "is_bot": True, "first_name": "pisentry", "username": "pisentry_bot"}})
        return web.json_response({"ok": True, "result": message})

    async def _get_updates(self, fields: dict[str, str]) -> web.Response:
        offset = int(fields.get("offset", "0") or 0)
        deadline = time.monotonic() + min(float(fields.get("timeout", "0") or 0), 0.3)
        while True:
            with self._lock:
                ready = [u for u in self._updates if u["update_id"] >= offset]
                self._updates = ready  # confirmed ones are forgotten, as Telegram does
            if ready or time.monotonic() >= deadline:
                return web.json_response({"ok": True, "result": ready})
            await asyncio.sleep(0.02)


def _error(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description},
                             status=code)
