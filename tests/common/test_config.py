import json

import pytest

from common.config import ConfigError, load_config, parse_config
from common.paths import Home
from tests.support import pisentry


def test_defaults_run_anywhere():
    config = parse_config({})
    assert config.capture.source == "synthetic"
    assert config.web.host == "127.0.0.1"
    assert not config.notify.telegram.enabled


def test_detection_runs_at_15_fps_by_default_and_a_15_fps_camera_keeps_every_frame():
    """capture.lores_fps is 15 unless set: capture's limit lets every 2nd
    frame of a 30 fps camera through to detection, and every frame of a
    15 fps one, on time or up to 10 ms early or late (a network camera's
    jitter); 0 still analyses every frame."""
    from services.capture.sources import RateLimit

    config = parse_config({})
    assert config.capture.lores_fps == 15
    assert "15 fps or less is unchanged" in type(config.capture).model_fields[
        "lores_fps"].description
    limit = RateLimit(config.capture.lores_fps)
    assert [i for i in range(60) if limit.take(100 + i / 30)] == list(range(0, 60, 2))
    limit = RateLimit(config.capture.lores_fps)
    jitter = [0.0, 0.01, -0.01, 0.004, -0.007, 0.009, -0.01, 0.0]
    assert all(limit.take(100 + i / 15 + jitter[i % 8]) for i in range(60))
    assert parse_config({"capture": {"lores_fps": 0}}).capture.lores_fps == 0


@pytest.mark.parametrize("text, key", [
    ("[detect]\nmin_trigger_areaa = 0.1\n", "detect.min_trigger_areaa: unknown key"),
    ("[capture]\nfps = 'fast'\n", "capture.fps:"),
    ("[capture]\nfps = 500\n", "capture.fps:"),
    ("[capture]\nlores_width = 321\n", "capture.lores_width: Value error, 321 is odd"),
    ("[bus]\nendpoints = { frames = 'http://x' }\n", "bus.endpoints:"),
    ("[[detect.zones]]\nname = 'door'\npolygon = [[0, 0], [2, 0], [1, 1]]\n",
     "detect.zones.0.polygon.1.0:"),
    ("[capture\n", "not valid TOML"),
])
def test_check_config_names_the_key_and_exits_2(home, text, key):
    path = home.root / "bad.toml"
    path.write_text(text)
    result = pisentry("check-config", str(path), home=home)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr


def test_missing_file_is_one_line_exit_2(home):
    result = pisentry("check-config", str(home.root / "nope.toml"), home=home)
    assert result.returncode == 2
    assert result.stderr.strip().endswith("nope.toml: file not found")
    result = pisentry("run", "--config", str(home.root / "nope.toml"), home=home)
    assert result.returncode == 2 and "file not found" in result.stderr


def test_check_config_masks_secrets_from_file_and_environment(home, monkeypatch):
    path = home.root / "c.toml"
    path.write_text('[notify.telegram]\ntoken = "123:file-secret-token"\n')
    result = pisentry("check-config", str(path), home=home,
                      env={"PISENTRY_SMTP_PASSWORD": "env-secret-pw"})
    assert result.returncode == 0
    assert "file-secret-token" not in result.stdout and "env-secret-pw" not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["notify"]["telegram"]["token"] == "**********"
    assert shown["notify"]["email"]["password"] == "**********"


def test_environment_secret_reaches_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("PISENTRY_TELEGRAM_TOKEN", "abc:def")
    config = load_config(None, home=Home(tmp_path))
    assert config.notify.telegram.token.get_secret_value() == "abc:def"


def test_load_config_raises_config_error_for_wrong_section_type():
    with pytest.raises(ConfigError, match="^config: capture: "):
        parse_config({"capture": 3})


def test_example_config_documents_every_key_and_is_current():
    """deploy/pisentry.example.toml is what the models say (regenerate with
    `pisentry check-config --example > deploy/pisentry.example.toml`)."""
    import tomllib

    from common.config import Config
    from common.config_example import render_example
    from tests.support import REPO

    committed = (REPO / "deploy" / "pisentry.example.toml").read_text()
    assert committed == render_example()
    parse_config(tomllib.loads(committed))

    def keys(model, prefix=""):
        for name, info in model.model_fields.items():
            sub = getattr(info.annotation, "model_fields", None)
            args = getattr(info.annotation, "__args__", ())
            if sub is None and args and hasattr(args[0], "model_fields"):
                sub = args[0].model_fields
                yield from keys(args[0], f"{prefix}{name}.")
            elif sub is not None:
                yield from keys(info.annotation, f"{prefix}{name}.")
            else:
                yield prefix, name

    for prefix, name in keys(Config):
        assert f"\n{name} = " in committed or f"\n# {name} = " in committed, prefix + name
