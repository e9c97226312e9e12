"""Telegram: alerts out, commands and label buttons in (python-telegram-bot).

The bot lives on an asyncio loop in its own thread, so a slow upload never
holds up the service loop. The service thread calls ``send_*`` (they only
schedule work and return at once); commands and button presses from the
configured chats come back through ``inbox`` as ``Incoming`` items, which
the service handles on its own thread. Messages from any other chat are
logged (chat id only) and ignored.

Delivery: HTTP 429 waits the ``retry_after`` the server asks for, network
errors and 5xx back off exponentially; a message still undelivered after
``retry_seconds`` is dropped and counted. Photos and clips travel as separate
requests on a pool of connections, so an alert photo never queues behind a
clip upload.

The token is part of every request URL: nothing here logs a URL or an
exception text without passing it through ``_redact``.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
import os
import queue
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Opt into python-telegram-bot's coming behaviour (retry_after as a timedelta)
# now, which also silences its deprecation warning on every 429.
os.environ.setdefault("PTB_TIMEDELTA", "1")

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from services.notify.commands import Incoming, label_data

if TYPE_CHECKING:
    from common.config import TelegramConfig

log = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class TelegramLink:
    def __init__(self, cfg: TelegramConfig, inbox: queue.Queue[Incoming],
                 poll: bool = True) -> None:
        self.cfg = cfg
        self.inbox = inbox
        self.poll = poll
        self.allowed = set(cfg.chat_ids)
        self.allowed_users = set(cfg.allowed_user_ids)
        self._token = cfg.token.get_secret_value()
        self._requests = (
            HTTPXRequest(connection_pool_size=8, read_timeout=30, write_timeout=60,
                         media_write_timeout=300, connect_timeout=10),
            HTTPXRequest(connection_pool_size=1, read_timeout=cfg.poll_timeout + 10,
                         connect_timeout=10),
        )
        self.bot = Bot(self._token, base_url=cfg.base_url, request=self._requests[0],
                       get_updates_request=self._requests[1])
        self.counters = {"tg_sent": 0, "tg_failed": 0, "tg_retries": 0, "tg_ignored_chats": 0,
                         "tg_ignored_users": 0}
        self.failing = ""  # why the Bot API cannot be reached now, "" when it can
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- service thread ---------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_loop, name="telegram", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 0.8) -> None:
        self._stopping = True
        if self._thread is None:
            return

        async def _shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for request in self._requests:
                await request.shutdown()

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), self._loop).result(timeout)
        except Exception:  # noqa: BLE001, S110 - a hung upload: the daemon thread dies with us
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(0.5)

    def send_alert(self, event_id: str, photo: bytes, caption: str, silent: bool,
                   created: float) -> None:
        markup = None
        if self.cfg.label_buttons and event_id:
            markup = InlineKeyboardMarkup([[
                InlineKeyboardButton("Real alarm", callback_data=label_data(event_id, "real")),
                InlineKeyboardButton("False alarm", callback_data=label_data(event_id, "false")),
            ]])
        if not photo:  # the snapshot never came: warn in words, still labelable
            for chat in self.cfg.chat_ids:
                self._submit(f"alert text to {chat}", created,
                             lambda chat=chat: self.bot.send_message(
                                 chat, caption + "\n(no picture)", reply_markup=markup,
                                 disable_notification=silent))
            return
        for chat in self.cfg.chat_ids:
            self._submit(f"alert photo to {chat}", created, lambda chat=chat: self.bot.send_photo(
                chat, photo, caption=caption, filename="alert.jpg", reply_markup=markup,
                disable_notification=silent))

    def send_photo(self, chats: list[int], photo: bytes, caption: str) -> None:
        for chat in chats:
            self._submit(f"photo to {chat}", time.time(), lambda chat=chat: self.bot.send_photo(
                chat, photo, caption=caption, filename="snapshot.jpg"))

    def send_video(self, chats: list[int], path: str, caption: str, silent: bool = False
                   ) -> None:
        data = Path(path)

        async def _send(chat: int) -> Any:
            with open(data, "rb") as f:  # noqa: ASYNC230 - a local open; reread on each retry
                return await self.bot.send_video(chat, f, caption=caption, filename=data.name,
                                                 supports_streaming=True,
                                                 disable_notification=silent)

        for chat in chats:
            self._submit(f"clip to {chat}", time.time(), lambda chat=chat: _send(chat))

    def send_text(self, chats: list[int], text: str, silent: bool = False) -> None:
        for chat in chats:
            self._submit(f"text to {chat}", time.time(),
                         lambda chat=chat: self.bot.send_message(
                             chat, text, disable_notification=silent))

    def answer(self, query_id: str, text: str) -> None:
        self._submit("button answer", time.time(),
                     lambda: self.bot.answer_callback_query(query_id, text=text))

    # -- telegram thread ------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        if self.poll:
            self._loop.create_task(self._poll_updates())
        self._loop.run_forever()

    def _submit(self, what: str, created: float,
                call: Callable[[], Awaitable[Any]]) -> None:
        if self._stopping:
            return
        asyncio.run_coroutine_threadsafe(self._deliver(what, created, call), self._loop)

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text

    async def _deliver(self, what: str, created: float,
                       call: Callable[[], Awaitable[Any]]) -> bool:
        attempt = 0
        while True:
            try:
                await call()
                self.counters["tg_sent"] += 1
                self.failing = ""
                return True
            except RetryAfter as exc:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wait = exc.retry_after
                delay = (wait.total_seconds() if isinstance(wait, dtm.timedelta)
                         else float(wait))
                delay = min(max(delay, 0.1), MAX_BACKOFF)
                log.warning("telegram: flood control on %s; waiting %.1f s", what, delay)
            except (BadRequest, Forbidden, InvalidToken) as exc:
                # The request itself is wrong (bad chat, blocked bot, bad token): retrying
                # cannot help.
                self.counters["tg_failed"] += 1
                log.error("telegram: %s refused: %s", what, self._redact(str(exc)))
                return False
            except NetworkError as exc:  # connection problems and 5xx answers
                self.failing = self._redact(str(exc))[:100]
                attempt += 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (attempt - 1))
                log.warning("telegram: %s failed (%s); retry %d in %.1f s", what,
                            self._redact(str(exc)), attempt, delay)
            if time.time() + delay - created > self.cfg.retry_seconds:
                self.counters["tg_failed"] += 1
                log.error("telegram: giving up on %s after %.0f s", what, time.time() - created)
                return False
            self.counters["tg_retries"] += 1
            await asyncio.sleep(delay)

    async def _poll_updates(self) -> None:
        offset: int | None = None
        failures = 0
        while not self._stopping:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=self.cfg.poll_timeout,
                    allowed_updates=["message", "callback_query"])
                failures = 0
                self.failing = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling whatever the server does
                failures += 1
                self.failing = self._redact(str(exc))[:100]
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
                if isinstance(exc, RetryAfter):
                    delay = 5.0
                log.warning("telegram: polling failed (%s); retry in %.1f s",
                            self._redact(str(exc)), delay)
                await asyncio.sleep(delay)
                continue
            for update in updates:
                offset = update.update_id + 1
                self._route(update)

    def _route(self, update: Update) -> None:
        if update.callback_query is not None:
            query = update.callback_query
            chat = query.message.chat.id if query.message else query.from_user.id
            if self._allowed(chat, query.from_user.id):
                self.inbox.put(Incoming("label", chat, query.data or "", query.id))
            return
        message = update.message
        if message is None or not message.text:
            return
        sender = message.from_user.id if message.from_user else None
        if self._allowed(message.chat.id, sender):
            self.inbox.put(Incoming("command", message.chat.id, message.text))

    def _allowed(self, chat_id: int, user_id: int | None) -> bool:
        if chat_id not in self.allowed:
            self.counters["tg_ignored_chats"] += 1
            log.warning("telegram: ignored a message from chat %d (not in chat_ids)", chat_id)
            return False
        if self.allowed_users and user_id not in self.allowed_users:
            # any member of an allowed group could otherwise disarm the camera
            self.counters["tg_ignored_users"] += 1
            log.warning("telegram: ignored a message from user %s in chat %d (not in "
                        "allowed_user_ids)", user_id, chat_id)
            return False
        return True
