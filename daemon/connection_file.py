"""Writing the connection file (the daemon's half): atomic, user-only before the secret is in it, removed at stop.

The format, its path and the reading side are the client's (`qwen_tray_client.connection`); the daemon alone
writes it, so the access-control code (0600 on POSIX, a one-entry ACL on Windows) lives here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from qwen_tray_client.connection import ConnectionFileError, ConnectionInfo

# ---------------------------------------------------------------- access control


class AclApi(Protocol):
    """The two Windows steps behind the user-only ACL (a fake implements this in tests)."""

    def user_sid(self) -> str:
        """The string SID of the user this process runs as, from the process token."""
        ...

    def apply_sddl(self, path: str, sddl: str) -> None:
        """Replace the file's DACL with the one in `sddl` (OSError on failure)."""
        ...


class Win32Acl:  # pragma: no cover - Windows only; its calls are declared (and checked) in ipc/win32.py
    """advapi32 through ctypes: the token's SID, and SetNamedSecurityInfoW with a DACL parsed from SDDL."""

    def user_sid(self) -> str:
        from qwen_tray_client import win32

        return win32.current_user_sid()

    def apply_sddl(self, path: str, sddl: str) -> None:
        import ctypes

        from qwen_tray_client import win32

        sd = win32.PVOID()
        if not win32.call("ConvertStringSecurityDescriptorToSecurityDescriptorW", sddl, win32.SDDL_REVISION_1,
                          ctypes.byref(sd), None):
            raise OSError(win32.last_error(), f"cannot parse the security descriptor {sddl!r}")
        try:
            present, defaulted, dacl = win32.BOOL(), win32.BOOL(), win32.PVOID()
            if not win32.call("GetSecurityDescriptorDacl", sd, ctypes.byref(present), ctypes.byref(dacl),
                              ctypes.byref(defaulted)):
                raise OSError(win32.last_error(), "GetSecurityDescriptorDacl failed")
            err = win32.call("SetNamedSecurityInfoW", path, win32.SE_FILE_OBJECT,
                             win32.DACL_SECURITY_INFORMATION | win32.PROTECTED_DACL_SECURITY_INFORMATION,
                             None, None, dacl, None)
            if err:
                raise OSError(err, f"SetNamedSecurityInfoW failed for {path}")
        finally:
            win32.call("LocalFree", sd)


def user_only_sddl(sid: str) -> str:
    """The DACL as SDDL: protected (nothing inherited from the folder), one entry: full access for `sid`.

    The same result as jupyter_core's `win32_restrict_file_to_user`, written as SDDL so it can be read and tested.
    """
    if not re.fullmatch(r"S-1-\d+(-\d+)+", sid):
        raise ConnectionFileError(f"cannot restrict the connection file: {sid!r} is not a SID")
    return f"D:P(A;;FA;;;{sid})"


def _windows_grant_user_only(path: Path, acl: AclApi | None = None) -> None:
    """Replace the file's ACL with one entry for the user of this process's token (not %USERNAME%)."""
    api: AclApi = acl if acl is not None else Win32Acl()
    try:
        sddl = user_only_sddl(api.user_sid())
        api.apply_sddl(str(path), sddl)
    except OSError as exc:
        raise ConnectionFileError(f"cannot restrict {path} to your user ({exc}); nothing was written") from exc


def restrict_to_user(path: Path, *, windows: bool | None = None, acl: AclApi | None = None) -> None:
    """Make `path` readable and writable by the current user alone: 0600 on POSIX, a one-entry ACL on Windows."""
    if os.name == "nt" if windows is None else windows:
        _windows_grant_user_only(path, acl)
    else:
        os.chmod(path, 0o600)


# ---------------------------------------------------------------- write / read / remove


def write_connection_file(path: Path, info: ConnectionInfo,
                          restrict: Callable[[Path], None] = restrict_to_user) -> Path:
    """Atomically (re)place the file: a temp file in the same folder, restricted, filled, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp_name = tempfile.mkstemp(prefix=".connection-", suffix=".tmp", dir=path.parent)  # 0600 on POSIX
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            restrict(tmp)  # before the secret key is in it
            json.dump(info.as_dict(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_connection_file(path: Path, pid: int) -> bool:
    """Remove the file if process `pid` wrote it (never a newer daemon's file). True when removed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("pid") != pid:
        return False
    path.unlink(missing_ok=True)
    return True
