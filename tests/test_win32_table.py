"""ipc/win32.py's table against the real Win32 prototypes (mingw-w64's copy of the SDK headers).

For every declared function the headers' prototype is read from the preprocessed headers, and the C compiler
(mingw-w64, targeting Win64) computes each argument's and the result's size, signedness and kind (integer,
pointer and what it points to, struct by value). The ctypes declaration must agree on each, so a DWORD declared
as a 64-bit int, a HANDLE declared as c_int, a wrong pointee or a missing argument fails here.
Installed by installer/dev-setup.sh: gcc-mingw-w64-x86-64-win32 (the compiler) and mingw-w64-x86-64-dev (headers).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qwen_tray_client import win32

GCC = "x86_64-w64-mingw32-gcc"
HEADERS = "#define WINVER 0x0A00\n#define _WIN32_WINNT 0x0A00\n" + "".join(
    f"#include <{h}>\n" for h in ("windows.h", "shellscalingapi.h", "sddl.h", "aclapi.h"))
C_WORDS = {"const", "volatile", "struct", "enum", "union", "unsigned", "signed", "int", "long", "short", "char",
           "void", "__int64"}

Kind = tuple[Any, ...]


def _gcc(source: str, *flags: str) -> str:
    if shutil.which(GCC) is None:
        pytest.fail(f"{GCC} is missing: run installer/dev-setup.sh (it installs gcc-mingw-w64-x86-64-win32)")
    out = subprocess.run([GCC, *flags, "-x", "c", "-", "-o", "-"], input=source, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _prototypes() -> dict[str, tuple[str, list[str]]]:
    """name -> (return type, [argument types]) from the preprocessed headers."""
    text = " ".join(_gcc(HEADERS, "-E", "-P").split())
    text = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", " ", text)
    protos: dict[str, tuple[str, list[str]]] = {}
    for name in win32.CFUNCTIONS:
        m = re.search(r"(?:^|[;{}])\s*([^;{}()]*?)\b" + name + r"\s*\(([^()]*)\)\s*;", text)
        assert m, f"no prototype for {name} in the headers"
        ret = " ".join(w for w in m.group(1).split() if w not in ("extern", "__declspec", "static", "inline"))
        params = [p.strip() for p in m.group(2).split(",")]
        if params == ["void"] or params == [""]:
            params = []
        protos[name] = (ret, [_strip_name(p) for p in params])
    return protos


def _strip_name(param: str) -> str:
    tokens = re.findall(r"\w+|\*", param)
    words = [t for t in tokens if t != "*"]
    if len(words) >= 2 and tokens[-1] not in C_WORDS and tokens[-1] != "*":
        tokens = tokens[:-1]
    return " ".join(tokens)


def _asm_ints(source: str) -> dict[str, int]:
    asm = _gcc(HEADERS + source, "-S", "-O0", "-w", "-fno-zero-initialized-in-bss")
    found = re.finditer(r"^(q_\w+):\s*\n\s*\.(long|space|zero)\s+(-?\d+)", asm, re.M)
    return {m.group(1): int(m.group(3)) if m.group(2) == "long" else 0 for m in found}  # .space 4: a zero


def _c_kinds(protos: dict[str, tuple[str, list[str]]]) -> dict[str, list[Kind]]:
    """For each function: [result kind, arg kinds...] as the compiler sees them on Win64."""
    types = {(n, i): t for n, (ret, args) in protos.items() for i, t in enumerate([ret, *args])}
    first = "".join(f"int q_s_{n}_{i} = sizeof({t});\nint q_c_{n}_{i} = __builtin_classify_type(*({t} *)0);\n"
                    for (n, i), t in types.items() if t != "void")
    facts = _asm_ints(first)
    second = ""
    for (n, i), t in types.items():
        cls = facts.get(f"q_c_{n}_{i}")
        if cls == 1:  # integer: signedness
            second += f"int q_g_{n}_{i} = (({t})-1 < ({t})0);\n"
        elif cls == 5:  # pointer: what it points to
            second += f"int q_p_{n}_{i} = sizeof(*({t})0);\n"
    facts.update(_asm_ints(second))
    kinds: dict[str, list[Kind]] = {}
    for (n, i), t in sorted(types.items()):
        if t == "void":
            kind: Kind = ("void",)
        else:
            cls, size = facts[f"q_c_{n}_{i}"], facts[f"q_s_{n}_{i}"]
            if cls == 1:
                kind = ("int", size, bool(facts[f"q_g_{n}_{i}"]))
            elif cls == 3:  # enum: an int in the Windows ABI
                kind = ("enum", size)
            elif cls == 5:
                kind = ("ptr", facts[f"q_p_{n}_{i}"])
            elif cls == 12:
                kind = ("struct", size)
            else:
                raise AssertionError(f"{n}: unexpected type class {cls} for {t}")
        kinds.setdefault(n, []).append(kind)
    return kinds


def _matches(declared: Any, kind: Kind) -> bool:
    """Whether a ctypes type passes/returns what the C prototype says, with Win64 sizes."""
    if declared is None:
        return kind == ("void",)
    if kind[0] == "ptr":
        if declared in (ctypes.c_void_p,):
            return True  # an opaque pointer: any pointer type is passed the same way
        if declared is ctypes.c_wchar_p:
            return kind[1] == 2  # WCHAR *
        if isinstance(declared, type) and issubclass(declared, ctypes._Pointer):
            return ctypes.sizeof(declared._type_) == kind[1]
        return False
    if kind[0] == "struct":
        return isinstance(declared, type) and issubclass(declared, ctypes.Structure) and \
            ctypes.sizeof(declared) == kind[1]
    code = getattr(declared, "_type_", None)
    if not isinstance(code, str) or code not in "bBhHiIlLqQ":
        return False
    if kind[0] == "enum":
        return ctypes.sizeof(declared) == kind[1]
    return ctypes.sizeof(declared) == kind[1] and (code in "bhilq") == kind[2]


@pytest.fixture(scope="module")
def c_kinds() -> dict[str, list[Kind]]:
    return _c_kinds(_prototypes())


def test_every_declared_function_matches_its_sdk_prototype(c_kinds: dict[str, list[Kind]]) -> None:
    wrong = []
    for name, (_dll, argtypes, restype) in win32.CFUNCTIONS.items():
        ret, *args = c_kinds[name]
        if len(args) != len(argtypes):
            wrong.append(f"{name}: {len(argtypes)} arguments declared, the prototype has {len(args)}")
            continue
        if not _matches(restype, ret):
            wrong.append(f"{name}: result {restype} vs {ret}")
        wrong += [f"{name}: argument {i} {a} vs {k}" for i, (a, k) in enumerate(zip(argtypes, args, strict=True))
                  if not _matches(a, k)]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_wrong_declarations(c_kinds: dict[str, list[Kind]]) -> None:
    """The comparison itself: today's mistakes (a HANDLE as c_int, a 64-bit DWORD) would not pass."""
    handle_kind = c_kinds["CloseHandle"][1]
    assert not _matches(ctypes.c_int, handle_kind)
    size_ptr = c_kinds["GetTokenInformation"][5]  # PDWORD ReturnLength
    assert not _matches(ctypes.POINTER(ctypes.c_uint64), size_ptr)
    assert _matches(ctypes.POINTER(ctypes.c_uint32), size_ptr)
    dword = c_kinds["OpenProcess"][1]
    assert dword == ("int", 4, False) and not _matches(ctypes.c_int32, dword)
    assert c_kinds["MonitorFromPoint"][1] == ("struct", 8)  # POINT by value, two LONGs
    assert c_kinds["GetMessageW"][1] == ("ptr", ctypes.sizeof(win32.MSG))


def test_the_dlls_are_loaded_once_with_their_own_function_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[tuple[str, dict[str, Any]]] = []

    class Dll:
        def __getitem__(self, name: str) -> Any:
            if name == "SetProcessDpiAwarenessContext":
                raise AttributeError(name)  # Windows 8.1
            return type("Fn", (), {"argtypes": None, "restype": None, "__call__": lambda self, *a: 7})()

    def windll(name: str, **kw: Any) -> Dll:
        loads.append((name, kw))
        return Dll()

    monkeypatch.setattr(ctypes, "WinDLL", windll, raising=False)
    win32._reset_for_tests()
    try:
        assert win32.fn("CloseHandle").argtypes == (win32.HANDLE,)
        assert win32.fn("CloseHandle") is win32.fn("CloseHandle")
        assert win32.fn("OpenProcess").restype is win32.HANDLE
        assert win32.fn("SetProcessDpiAwarenessContext") is None
        with pytest.raises(OSError, match="not available"):
            win32.call("SetProcessDpiAwarenessContext", None)
        assert loads == [("kernel32", {"use_last_error": True}), ("user32", {"use_last_error": True})]
    finally:
        win32._reset_for_tests()


def test_no_module_uses_the_shared_windll() -> None:
    """ctypes.windll's function objects are shared with every library in the process: nobody here uses them."""
    root = Path(__file__).resolve().parent.parent
    users = [str(p.relative_to(root)) for d in ("daemon", "ipc") for p in (root / d).rglob("*.py")
             if re.search(r"\bwindll\b|WinDLL\(", p.read_text(encoding="utf-8")) and p.name != "win32.py"]
    assert users == []
