"""Config: defaults, strict validation with errors naming key and file, and `qwen-tray config`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import qwen_tray_cmd

from qwen_tray.config import Config, ConfigError, load_config, parse_config


def test_missing_file_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(tmp_path / "nope.toml")
    assert cfg == Config()
    assert cfg.model.device == "auto" and cfg.model.backend == "genai"
    assert cfg.server.queue_size == 32 and cfg.npu.max_prompt_len == 1024


def test_values_are_read(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[model]\ndevice = "CPU"\n[generation]\ntemperature = 1\n[ui]\npresets = ["A", "B"]\n')
    cfg = load_config(f)
    assert cfg.model.device == "CPU"
    assert cfg.generation.temperature == 1.0 and isinstance(cfg.generation.temperature, float)
    assert cfg.ui.presets == ["A", "B"]
    assert cfg.server.port == 0  # untouched keys keep defaults


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[model]\ndevce = 'CPU'\n", "unknown key 'model.devce' in "),
        ("[modle]\n", "unknown key 'modle' in "),
        ("[model]\ndevice = 'TPU'\n", "model.device in "),
        ("[server]\nport = 'x'\n", "server.port in "),
        ("[server]\nport = 70000\n", "server.port in "),
        ("[ui]\nshow_tray = 1\n", "ui.show_tray in "),
        ("[ui]\npresets = [1]\n", "ui.presets in "),
        ("model = 3\n", "'model' in "),
        ("[generation]\ntop_p = 0\n", "generation.top_p in "),
        ("[model\n", "is not valid TOML"),
        ('[cpu]\nkv_cache_precision = "u4"\n', "cpu.kv_cache_precision in "),
        ("[cpu]\ndynamic_quantization_group_size = -2\n", "cpu.dynamic_quantization_group_size in "),
    ],
)
def test_errors_name_key_and_file(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "config.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert message in str(err.value)
    assert str(f) in str(err.value)


def test_parse_rejects_bool_for_int() -> None:
    with pytest.raises(ConfigError, match="server.queue_size"):
        parse_config({"server": {"queue_size": True}})


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(qwen_tray_cmd() + list(args), capture_output=True, text=True, timeout=60)


def test_config_command_prints_paths_and_effective_config(isolated_user_dirs: Path) -> None:
    out = run_cli("config", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("config", "models", "cache", "logs", "connection"):
        assert data["paths"][key].startswith(str(isolated_user_dirs)), key
    assert data["config"]["model"]["device"] == "auto"
    text = run_cli("config").stdout
    assert "[model]" in text and 'device = "auto"' in text and "# models" in text


def test_config_command_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[model]\nfoo = 1\n")
    out = run_cli("--config", str(f), "config")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == f"qwen-tray: error: unknown key 'model.foo' in {f}"


def test_unknown_option_is_an_error() -> None:
    out = run_cli("config", "--frobnicate")
    assert out.returncode == 2 and "unrecognized arguments: --frobnicate" in out.stderr
