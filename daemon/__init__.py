"""qwen-tray: the resident process (engine, scheduler, desktop, service)."""

from importlib.metadata import PackageNotFoundError, version

from . import privacy  # noqa: F401 - first: OpenVINO telemetry off before anything imports openvino

try:
    __version__ = version("qwen-tray")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+src"
