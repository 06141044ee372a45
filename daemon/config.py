"""The user's TOML config: defaults, strict validation, and clear errors.

Every key is optional. An unknown key or a wrong type is a `ConfigError` that
names the key and the file, because a typo silently ignored is worse than a
refusal to start. The schema is the dataclasses below; their defaults are the
documented defaults (README, "Configuration").
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Device = Literal["auto", "hybrid", "NPU", "GPU", "CPU"]
Backend = Literal["genai", "optimum", "openai"]  # openai: a remote OpenAI-compatible server ([remote])


class ConfigError(ValueError):
    """A config problem a person can fix; the message names the key and the file."""


@dataclass
class ModelConfig:
    path: str = ""  # OpenVINO IR folder; "" = the store's default model, else the bundled demo model
    backend: Backend = "genai"
    device: Device = "auto"


@dataclass
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)


@dataclass
class ImageConfig:
    max_tokens: int = 0  # per image; 0 = `default_tokens` (qwen_tray.budget also fits the prompt limit)
    default_tokens: int = 1280  # budget on CPU/GPU (about 1280x1024 px)
    max_bytes: int = 32 * 1024 * 1024  # encoded or raw image size limit for requests
    max_pixels: int = 8192 * 8192  # decompression-bomb guard


@dataclass
class NpuConfig:
    max_prompt_len: int = 1024
    min_response_len: int = 128
    generate_hint: str = ""  # "" = OpenVINO default; FAST_COMPILE | BEST_PERF
    prefill_hint: str = ""


@dataclass
class GpuConfig:
    queue_throttle: str = "LOW"  # LOW keeps the GPU driver from spin-polling a CPU core


CpuPrecision = Literal["", "f32", "bf16", "f16"]
KvCachePrecision = Literal["", "f32", "bf16", "f16", "u8"]


@dataclass
class CpuConfig:
    # "" / -1 = the CPU plugin's defaults, which depend on the processor: bf16 compute on AVX-512-BF16/AMX
    # (f32 elsewhere), a u8 KV cache on x86, activations of int4/int8 matmuls quantized to int8 on the fly.
    # Those defaults are the fast ones; "f32", "f32" and 0 trade speed for results that are the same on
    # every x86 CPU (the tests pin them where they compare text).
    inference_precision: CpuPrecision = ""
    kv_cache_precision: KvCachePrecision = ""
    dynamic_quantization_group_size: int = -1  # -1 = default; 0 = off


@dataclass
class EngineConfig:
    batching: bool = True  # CPU/GPU: requests share each decoding step (continuous batching); NPU: one at a time
    max_batch: int = 4  # requests decoding together; an interactive (popup) request joins even when full
    kv_cache_gb: int = 0  # CPU/GPU KV cache: 0 = grows with the running requests, >0 = a fixed pool of that size
    preempt: bool = True  # no batching (NPU, or batching off): a popup question stops a background answer at
    # the next token; that answer continues afterwards from where it stopped
    reuse_images: bool = False  # CPU/GPU: a follow-up of the last conversation does not encode its images again,
    # but genai 2026.4 then re-prefills the whole conversation (slower on CPU: docs/decisions.md)


@dataclass
class ServerConfig:
    port: int = 0  # 0 = any free port on 127.0.0.1
    queue_size: int = 32
    request_timeout_s: float = 300.0
    keep_alive_s: float = -1.0  # unload after this many idle seconds; < 0 = keep loaded forever


DEFAULT_HTTP_PORT = 11500  # not Ollama's 11434, LM Studio's 1234, OVMS/vLLM's 8000 or llama.cpp's 8080


@dataclass
class HttpConfig:
    """The OpenAI-compatible HTTP API on 127.0.0.1 (daemon/openai_api)."""

    enabled: bool = True
    port: int = DEFAULT_HTTP_PORT  # taken by another program: the HTTP API stays off, the rest runs (status says)
    allowed_origins: list[str] = field(default_factory=list)  # e.g. "http://localhost:3000"; none by default
    fetch_image_urls: bool = False  # true: fetch http(s) image URLs on the client's behalf (off: refused)


@dataclass
class RemoteConfig:
    """`model.backend = "openai"`: answer with any OpenAI-compatible server instead of a local model."""

    base_url: str = ""  # e.g. "http://gpu-box:8000/v3" (OVMS), "http://127.0.0.1:11434/v1" (Ollama)
    model: str = ""  # the server's model name
    api_key_file: str = ""  # a file holding the bearer key; "" = no key
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0  # the longest silence between two pieces of an answer


@dataclass
class HotkeyConfig:
    backend: str = "auto"  # auto | registerhotkey | keyboard | xlib
    ask_screen: str = "ctrl+alt+q"
    ask_region: str = "ctrl+alt+r"


@dataclass
class UiConfig:
    show_tray: bool = True
    default_prompt: str = "Describe what is on the screen."
    presets: list[str] = field(
        default_factory=lambda: ["Describe", "Extract text", "Explain this error", "Translate to English"]
    )
    history: bool = False  # keep questions and answers on disk (off: nothing of the screen is stored)
    theme: Literal["auto", "light", "dark"] = "auto"  # the popup: follow the system's light/dark setting, or force one


@dataclass
class LogConfig:
    level: str = "INFO"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    npu: NpuConfig = field(default_factory=NpuConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    cpu: CpuConfig = field(default_factory=CpuConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    hotkey: HotkeyConfig = field(default_factory=HotkeyConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key} in {source} must be {_type_name(tp)}, not {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise bad
        return value
    if origin is list:
        if not isinstance(value, list):
            raise bad
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, key, source) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")  # a schema bug, not user input


def _build(cls: type, data: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown key '{dotted}' in {source}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"'{dotted}' in {source} must be a table ([{dotted}])")
            kwargs[key] = _build(tp, value, dotted + ".", source)
        else:
            kwargs[key] = _coerce(value, tp, dotted, source)
    return cls(**kwargs)


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document into a Config."""
    cfg = _build(Config, data, "", source)
    _check_ranges(cfg, source)
    _check_hotkeys(cfg, source)
    return cfg


def _check_hotkeys(cfg: Config, source: str) -> None:
    """Hotkey strings are parsed here so a typo is a config error at start, not a hotkey that never fires."""
    from qwen_tray.hotkey.parse import BACKENDS, HotkeyError, parse_hotkey

    if cfg.hotkey.backend not in BACKENDS:
        raise ConfigError(f"hotkey.backend in {source} must be one of {', '.join(BACKENDS)}")
    parsed = {}
    for key in ("ask_screen", "ask_region"):
        text = getattr(cfg.hotkey, key)
        if not text.strip():
            continue  # "" turns that hotkey off
        try:
            parsed[key] = parse_hotkey(text)
        except HotkeyError as exc:
            raise ConfigError(f"hotkey.{key} in {source}: {exc}") from None
    if len(parsed) == 2 and parsed["ask_screen"] == parsed["ask_region"]:
        raise ConfigError(f"hotkey.ask_screen and hotkey.ask_region in {source} are the same combination")


def _check_ranges(cfg: Config, source: str) -> None:
    checks = [
        ("generation.max_new_tokens", cfg.generation.max_new_tokens >= 1, "at least 1"),
        ("generation.temperature", cfg.generation.temperature >= 0, "0 or more"),
        ("generation.top_p", 0 < cfg.generation.top_p <= 1, "in (0, 1]"),
        ("image.max_tokens", cfg.image.max_tokens >= 0, "0 or more"),
        ("image.default_tokens", cfg.image.default_tokens >= 4, "at least 4"),
        ("image.max_bytes", cfg.image.max_bytes >= 1024, "at least 1024"),
        ("image.max_pixels", cfg.image.max_pixels >= 1024, "at least 1024"),
        ("npu.max_prompt_len", cfg.npu.max_prompt_len >= 64, "at least 64"),
        ("cpu.dynamic_quantization_group_size", cfg.cpu.dynamic_quantization_group_size >= -1,
         "-1 (the default), 0 (off) or a group size"),
        ("npu.min_response_len", cfg.npu.min_response_len >= 1, "at least 1"),
        ("engine.max_batch", 1 <= cfg.engine.max_batch <= 64, "in 1..64"),
        ("engine.kv_cache_gb", 0 <= cfg.engine.kv_cache_gb <= 256, "in 0..256"),
        ("server.port", 0 <= cfg.server.port <= 65535, "in 0..65535"),
        ("http.port", 1 <= cfg.http.port <= 65535, "in 1..65535"),
        ("remote.connect_timeout_s", cfg.remote.connect_timeout_s > 0, "more than 0"),
        ("remote.read_timeout_s", cfg.remote.read_timeout_s > 0, "more than 0"),
        ("server.queue_size", cfg.server.queue_size >= 1, "at least 1"),
        ("server.request_timeout_s", cfg.server.request_timeout_s > 0, "more than 0"),
        ("gpu.queue_throttle", cfg.gpu.queue_throttle in ("LOW", "MEDIUM", "HIGH", ""), "LOW, MEDIUM, HIGH or \"\""),
        ("log.level", cfg.log.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "DEBUG, INFO, WARNING or ERROR"),
    ]
    for key, ok, what in checks:
        if not ok:
            raise ConfigError(f"{key} in {source} must be {what}")
    if cfg.model.backend == "openai" and not (cfg.remote.base_url.startswith(("http://", "https://"))
                                              and cfg.remote.model):
        raise ConfigError(f'model.backend "openai" in {source} needs remote.base_url (http:// or https://) '
                          "and remote.model")
    for origin in cfg.http.allowed_origins:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise ConfigError(f"http.allowed_origins in {source}: {origin!r} is not an origin "
                              '(scheme://host[:port], e.g. "http://localhost:3000")')


def load_config(path: Path) -> Config:
    """Read `path`; a missing file means all defaults."""
    if not path.exists():
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse_config(data, str(path))


def to_toml(cfg: Config) -> str:
    """Render the effective config as TOML (for `qwen-tray config`)."""
    lines: list[str] = []
    for section, values in cfg.as_dict().items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    import json

    return json.dumps(str(v))


