"""The settings page's test buttons: one real attempt per notifier with the
saved config, answered with success or the exact reason it failed.

- Telegram: the live picture as a photo to every allowed chat; and the chats
  that have written to the bot (``getUpdates``) for the wizard.
- E-mail: one message with the picture, through notify's own mailer.
- MQTT: one message on ``<topic_prefix>/<camera>/test``, acknowledged (QoS 1).
- NAS: connect, verify the host key against known_hosts (an unknown key is
  reported with its SHA256 fingerprint, as ssh prints it), log in, then write
  and delete a small file in ``remote_dir``.

Every message is scrubbed of the secrets it could carry (the bot token is in
every Bot API URL).
"""

from __future__ import annotations

import base64
import hashlib
import io
import posixpath
import smtplib
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import paramiko

from common.config import BackupConfig, EmailConfig, MqttConfig, TelegramConfig


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str

    def json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message}


def _scrub(text: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# -- Telegram -------------------------------------------------------------------------
async def _bot_call(cfg: TelegramConfig, method: str, timeout: float = 15.0,
                    **kw: Any) -> Any:
    token = cfg.token.get_secret_value()
    if not token:
        raise TelegramCheckError("no bot token set (notify.telegram.token)")
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            r = await client.post(f"{cfg.base_url}{token}/{method}", **kw)
    except httpx.TimeoutException:
        raise TelegramCheckError(f"{method}: timed out after {timeout:.0f} s") from None
    except httpx.HTTPError as exc:
        raise TelegramCheckError(_scrub(f"{method}: cannot reach the Bot API "
                                        f"({type(exc).__name__}: {exc})", token)) from None
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code != 200 or not body.get("ok"):
        why = body.get("description") or r.reason_phrase
        raise TelegramCheckError(_scrub(f"{method}: {r.status_code} {why}", token))
    return body.get("result")


class TelegramCheckError(RuntimeError):
    pass


async def telegram_photo(cfg: TelegramConfig, jpeg: bytes, camera: str) -> CheckResult:
    if not cfg.chat_ids:
        return CheckResult(False, "no allowed chat (notify.telegram.chat_ids)")
    sent = []
    try:
        for chat in cfg.chat_ids:
            await _bot_call(cfg, "sendPhoto", data={
                "chat_id": str(chat), "caption": f"pisentry test from {camera}"},
                files={"photo": ("snapshot.jpg", jpeg, "image/jpeg")})
            sent.append(str(chat))
    except TelegramCheckError as exc:
        return CheckResult(False, str(exc))
    return CheckResult(True, f"photo delivered to chat {', '.join(sent)}")


async def telegram_chats(cfg: TelegramConfig) -> list[dict[str, Any]]:
    """Chats that have written to the bot lately, newest last, each once.
    Raises ``TelegramCheckError``."""
    updates = await _bot_call(cfg, "getUpdates", json={"timeout": 0, "limit": 100})
    chats: dict[int, dict[str, Any]] = {}
    for update in updates or []:
        for kind in ("message", "edited_message", "channel_post", "my_chat_member"):
            chat = (update.get(kind) or {}).get("chat")
            if chat and isinstance(chat.get("id"), int):
                name = chat.get("title") or " ".join(
                    p for p in (chat.get("first_name"), chat.get("last_name")) if p)
                chats[chat["id"]] = {"id": chat["id"], "type": chat.get("type", ""),
                                     "name": name, "username": chat.get("username", ""),
                                     "allowed": chat["id"] in cfg.chat_ids}
    return list(chats.values())


# -- e-mail ---------------------------------------------------------------------------
def email(cfg: EmailConfig, jpeg: bytes | None, camera: str) -> CheckResult:
    from services.notify.mailer import build_message, send_mail

    if not cfg.host or not cfg.recipients:
        return CheckResult(False, "notify.email needs host and recipients")
    msg = build_message(cfg, f"pisentry test from {camera}",
                        "This is a test message from the pisentry settings page.", jpeg)
    try:
        send_mail(cfg, msg)
    except smtplib.SMTPAuthenticationError as exc:
        return CheckResult(False, f"{cfg.host}:{cfg.port} refused the login of "
                                  f"{cfg.username!r}: {exc.smtp_code} {_smtp_text(exc)}")
    except smtplib.SMTPResponseException as exc:
        return CheckResult(False, f"{cfg.host}:{cfg.port}: {exc.smtp_code} {_smtp_text(exc)}")
    except (smtplib.SMTPException, OSError) as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return CheckResult(False, _scrub(f"{cfg.host}:{cfg.port}: {what}",
                                         cfg.password.get_secret_value()))
    return CheckResult(True, f"sent to {', '.join(cfg.recipients)}")


def _smtp_text(exc: smtplib.SMTPResponseException) -> str:
    raw = exc.smtp_error
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


# -- MQTT -----------------------------------------------------------------------------
def mqtt(cfg: MqttConfig, camera: str, timeout: float = 10.0) -> CheckResult:
    import paho.mqtt.client as mqtt_client

    topic = f"{cfg.topic_prefix}/{camera}/test"
    connected = threading.Event()
    result: dict[str, Any] = {}
    client = mqtt_client.Client(mqtt_client.CallbackAPIVersion.VERSION2,
                                client_id=f"pisentry-{camera}-test")
    if cfg.tls:
        client.tls_set(ca_certs=cfg.ca_file or None)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password.get_secret_value() or None)

    def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        result["reason"] = reason
        connected.set()

    client.on_connect = on_connect
    where = f"{cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive)
    except (OSError, ValueError) as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return CheckResult(False, f"cannot reach the broker {where}: {what}")
    client.loop_start()
    try:
        if not connected.wait(timeout):
            return CheckResult(False, f"{where}: no answer to CONNECT within {timeout:.0f} s")
        reason = result["reason"]
        if reason.is_failure:
            return CheckResult(False, f"{where} refused the connection: {reason}")
        info = client.publish(topic, f"pisentry test {time.strftime('%H:%M:%S')}", qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            return CheckResult(False, f"{where}: the broker did not acknowledge {topic}")
        return CheckResult(True, f"published on {topic} at {where}")
    finally:
        client.disconnect()
        client.loop_stop()


# -- NAS ------------------------------------------------------------------------------
def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _Unknown(paramiko.MissingHostKeyPolicy):
    def __init__(self) -> None:
        self.key: paramiko.PKey | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        self.key = key
        raise paramiko.SSHException("unknown host key")


def nas(cfg: BackupConfig) -> CheckResult:
    if not cfg.host or not cfg.known_hosts:
        return CheckResult(False, "notify.backup needs host and known_hosts")
    where = f"{cfg.host}:{cfg.port}"
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(cfg.known_hosts)
    except OSError as exc:
        return CheckResult(False, f"cannot read known_hosts {cfg.known_hosts}: {exc.strerror}")
    policy = _Unknown()
    client.set_missing_host_key_policy(policy)
    t = cfg.connect_timeout
    try:
        client.connect(cfg.host, cfg.port, username=cfg.username or None,
                       key_filename=cfg.key_file or None, allow_agent=False,
                       look_for_keys=False, timeout=t, banner_timeout=t, auth_timeout=t)
    except paramiko.BadHostKeyException as exc:
        return CheckResult(False, f"host key of {where} ({exc.key.get_name()} "
                                  f"{fingerprint(exc.key)}) does not match {cfg.known_hosts}: "
                                  "refused (was the NAS replaced, or is someone in between?)")
    except paramiko.AuthenticationException:
        return CheckResult(False, f"{where} refused the login of {cfg.username!r} with "
                                  f"{cfg.key_file or 'no key'}")
    except TimeoutError:
        return CheckResult(False, f"timeout: {where} did not answer within {t:g} s")
    except paramiko.SSHException as exc:
        # Connected, but no SSH server spoke in time (paramiko says either,
        # depending on which wait gave up first).
        if "banner" in str(exc) or "No existing session" in str(exc):
            return CheckResult(False, f"timeout: {where} did not answer as an SSH server "
                                      f"within {t:g} s")
        if policy.key is not None:
            return CheckResult(False, f"unknown host key: {where} offers "
                                      f"{policy.key.get_name()} {fingerprint(policy.key)}, "
                                      f"which is not in {cfg.known_hosts}")
        return CheckResult(False, f"ssh to {where}: {exc}")
    except (OSError, EOFError) as exc:
        return CheckResult(False, f"cannot reach {where}: {exc}")
    try:
        return _write_and_delete(client, cfg, where)
    finally:
        client.close()


def _write_and_delete(client: paramiko.SSHClient, cfg: BackupConfig, where: str) -> CheckResult:
    name = posixpath.join(cfg.remote_dir, f".pisentry-test-{int(time.time() * 1000)}")
    try:
        if cfg.protocol == "sftp":
            sftp = client.open_sftp()
            try:
                try:
                    sftp.stat(cfg.remote_dir)
                except FileNotFoundError:
                    return CheckResult(False, f"no such folder on {where}: {cfg.remote_dir}")
                sftp.putfo(io.BytesIO(b"pisentry test\n"), name)
                sftp.remove(name)
            finally:
                sftp.close()
        else:
            code, out = _run(client, f"test -d {_quote(cfg.remote_dir)}", cfg.connect_timeout)
            if code != 0:
                return CheckResult(False, f"no such folder on {where}: {cfg.remote_dir}")
            code, out = _run(client, f"printf 'pisentry test\\n' > {_quote(name)} && "
                                     f"rm {_quote(name)}", cfg.connect_timeout)
            if code != 0:
                return CheckResult(False, f"cannot write in {cfg.remote_dir} on {where}: {out}")
    except PermissionError:
        return CheckResult(False, f"cannot write in {cfg.remote_dir} on {where}: "
                                  "permission denied")
    except (OSError, paramiko.SSHException) as exc:
        return CheckResult(False, f"{where}: {exc}")
    return CheckResult(True, f"connected to {where}, host key verified, wrote and deleted "
                             f"a file in {cfg.remote_dir}")


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def _run(client: paramiko.SSHClient, command: str, timeout: float) -> tuple[int, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    code = stdout.channel.recv_exit_status()
    return code, stderr.read().decode(errors="replace").strip()[:200]
