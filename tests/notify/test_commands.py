"""Chat command parsing."""

from __future__ import annotations

import pytest

from services.notify.commands import (
    ChatCommand,
    CommandError,
    label_data,
    parse_command,
    parse_label,
)


def test_commands_parse() -> None:
    assert parse_command("/status") == ChatCommand("status")
    assert parse_command("/arm@pisentry_bot") == ChatCommand("arm")
    assert parse_command("/mute") == ChatCommand("mute", minutes=60.0)
    assert parse_command("/mute 15") == ChatCommand("mute", minutes=15.0)
    assert parse_command("/rotate 30 -20") == ChatCommand("rotate", pan=30, tilt=-20)
    assert parse_command("hello") is None


@pytest.mark.parametrize("text, problem", [
    ("/rotate 30", "usage"), ("/rotate a b", "whole degrees"), ("/rotate 500 0", "within"),
    ("/mute soon", "minutes"), ("/mute -5", "between"), ("/selfdestruct", "unknown command"),
])
def test_bad_commands_say_why(text: str, problem: str) -> None:
    with pytest.raises(CommandError, match=problem):
        parse_command(text)


def test_label_buttons_round_trip() -> None:
    assert parse_label(label_data("ev-1", "real")) == ("ev-1", "real")
    assert parse_label(label_data("ev-1", "false")) == ("ev-1", "false_alarm")
    assert parse_label("label:maybe:ev-1") is None
    assert len(label_data("x" * 100, "false")) <= 64
