"""The services' config: validated in a child process, kept as plain data."""

import copy
import pickle
import subprocess
import sys

import pytest
from pydantic import BaseModel

from common.config import Config, parse_config
from common.config_view import ConfigError, ConfigView, Secret, load_view
from common.logs import secrets_of
from tests.support import write_config

RICH = {
    "general": {"camera": "porch", "services": ["capture", "detect", "ir"]},
    "bus": {"endpoints": {"frames": "tcp://127.0.0.1:5601"},
            "curve": {"public_key": "P" * 40, "secret_key": "S" * 40}},
    "capture": {"width": 1920, "height": 1080, "rotation": 180},
    "detect": {"zones": [{"name": "door", "polygon": [[0, 0], [0.5, 0], [0.5, 1]]}],
               "masks": [[[0.9, 0.9], [1, 0.9], [1, 1]]]},
    "notify": {"telegram": {"enabled": True, "token": "123456:telegram-token",
                            "chat_ids": [42, -7]}},
    "ir": {"servos": [{"name": "pan", "board_pin": 9}]},
}


def same(model, view):
    """Every field of the pydantic model, read the same through the view."""
    for name, value in model:
        got = getattr(view, name)
        if isinstance(value, BaseModel):
            same(value, got)
        elif hasattr(value, "get_secret_value"):
            assert isinstance(got, Secret) and got.get_secret_value() == value.get_secret_value()
        elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
            assert len(got) == len(value)
            for m, v in zip(value, got):
                same(m, v)
        else:
            assert got == value and type(got) is type(value), (name, got, value)


def test_the_view_reads_exactly_what_pydantic_validated(home):
    path, _ = write_config(home, RICH)
    view = load_view(str(path))
    model = parse_config(RICH)
    assert isinstance(view, ConfigView) and not isinstance(view, Config)
    same(model, view)
    assert view.bus.endpoints == {"frames": "tcp://127.0.0.1:5601"}  # a mapping, not a section
    assert view.detect.zones[0].name == "door"
    assert sorted(secrets_of(view)) == sorted(secrets_of(model)) == ["123456:telegram-token",
                                                                     "S" * 40]


def test_the_view_is_read_only_and_prints_no_secret(home):
    path, _ = write_config(home, RICH)
    view = load_view(str(path))
    with pytest.raises(AttributeError, match="read-only"):
        view.capture.width = 64
    with pytest.raises(AttributeError):
        view.capture.no_such_key  # noqa: B018
    assert "telegram-token" not in repr(view) and "telegram-token" not in str(view.notify)
    assert "**********" in repr(view.notify.telegram.token)
    assert copy.deepcopy(view) == view == pickle.loads(pickle.dumps(view))


def test_secrets_from_the_environment_reach_the_view(home, monkeypatch):
    monkeypatch.setenv("PISENTRY_WEB_API_KEY", "from-the-environment-0123456789abcdef")
    view = load_view(str(write_config(home, {})[0]))
    assert view.web.api_key.get_secret_value() == "from-the-environment-0123456789abcdef"


def test_a_bad_config_is_the_same_one_line_error(home):
    path = home.root / "bad.toml"
    path.write_text("[capture]\nfps = 500\n")
    with pytest.raises(ConfigError) as raised:
        load_view(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}: capture.fps:") and "\n" not in message
    with pytest.raises(ConfigError, match="file not found"):
        load_view(str(home.root / "missing.toml"))


def test_a_service_process_never_imports_pydantic(home):
    """What `pisentry ir` loads for its config, checked in a fresh interpreter."""
    path, _ = write_config(home, RICH)
    code = ("import sys; from common.config_view import load_view; "
            f"v = load_view({str(path)!r}); import common.worker, services.ir.service; "
            "print(v.general.camera, 'pydantic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["porch", "False"]
