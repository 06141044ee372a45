"""DPI awareness: the Windows fallback chain, tested with a fake DpiApi; a no-op elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwen_tray import dpi


class FakeDpi:
    def __init__(self, v2: int | None, v1: int | None, legacy: int | None) -> None:
        self.answers = {"v2": v2, "v1": v1, "legacy": legacy}
        self.calls: list[str] = []

    def set_context_per_monitor_v2(self) -> int | None:
        self.calls.append("v2")
        return self.answers["v2"]

    def set_awareness_per_monitor(self) -> int | None:
        self.calls.append("v1")
        return self.answers["v1"]

    def set_dpi_aware(self) -> int | None:
        self.calls.append("legacy")
        return self.answers["legacy"]


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    dpi._reset_for_tests()
    yield
    dpi._reset_for_tests()


@pytest.mark.parametrize(
    ("answers", "expected", "calls"),
    [
        ((0, 0, 0), "per-monitor-v2", ["v2"]),
        ((dpi.ERROR_ACCESS_DENIED, 0, 0), "already-set", ["v2"]),  # a manifest or earlier call won: keep it
        ((None, 0, 0), "per-monitor", ["v2", "v1"]),  # Windows 8.1: no SetProcessDpiAwarenessContext
        ((87, 0, 0), "per-monitor", ["v2", "v1"]),  # ERROR_INVALID_PARAMETER (v2 unknown, Windows 10 < 1703)
        ((None, dpi.E_ACCESSDENIED, 0), "already-set", ["v2", "v1"]),
        ((None, None, 0), "system", ["v2", "v1", "legacy"]),  # Windows 7
        ((None, None, None), "unaware", ["v2", "v1", "legacy"]),
    ],
)
def test_windows_fallback_chain(answers: tuple[int | None, ...], expected: str, calls: list[str]) -> None:
    api = FakeDpi(*answers)
    assert dpi.set_dpi_awareness(api, platform="win32") == expected
    assert api.calls == calls


def test_set_once_per_process() -> None:
    first = FakeDpi(0, 0, 0)
    assert dpi.set_dpi_awareness(first, platform="win32") == "per-monitor-v2"
    second = FakeDpi(0, 0, 0)
    assert dpi.set_dpi_awareness(second, platform="win32") == "per-monitor-v2"
    assert second.calls == []  # never a second attempt: Windows allows only one


def test_failure_is_never_fatal() -> None:
    class Broken(FakeDpi):
        def set_context_per_monitor_v2(self) -> int | None:
            raise OSError("no user32")

    assert dpi.set_dpi_awareness(Broken(0, 0, 0), platform="win32") == "unaware"


def test_noop_off_windows() -> None:
    api = FakeDpi(0, 0, 0)
    assert dpi.set_dpi_awareness(api, platform="linux") == "not-windows"
    assert api.calls == []
    dpi._reset_for_tests()
    assert dpi.set_dpi_awareness() == "not-windows"  # this machine, no seam: touches nothing
