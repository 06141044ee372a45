"""The client distribution (ipc/, `qwen-tray-client`) installed ALONE into a fresh venv talks to a running daemon.

Why a fresh venv: the point of the split is that a program can use the daemon with pyzmq and nothing else (no
OpenVINO, no Pillow, nothing of `qwen_tray`); only a separate interpreter proves no import reaches further.
The wheel is built here from the checkout; pip fetches pyzmq as any user's pip would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from apitools import png
from conftest import qwen_tray_cmd, subprocess_env

from qwen_tray.paths import default_paths

ROOT = Path(__file__).resolve().parent.parent

CLIENT_SCRIPT = r"""
import importlib.util, json, sys
from qwen_tray_client import Client, RawImage, RequestRejected
found = {m: importlib.util.find_spec(m) is not None for m in ("openvino", "qwen_tray", "PIL", "numpy", "platformdirs")}
out = {"found": found}
with Client(timeout=60.0) as client:  # finds the connection file as the daemon placed it, without platformdirs
    out["connection"] = client.info.path
    out["status"] = client.status()
    answer = client.ask(open(sys.argv[1], "rb").read(), "What colour is this?", max_new_tokens=12,
                        min_new_tokens=12)
    out["chunks"] = list(answer)
    out["result"] = answer.result
    raw = client.ask(RawImage(b"\x00\x80\xff" * (32 * 32), 32, 32, "RGB"), "And this?", max_new_tokens=4)
    out["raw_text"] = "".join(raw)
    try:
        "".join(client.ask(b"not an image", "?", max_new_tokens=4))
    except RequestRejected as exc:
        out["rejected"] = [exc.code, str(exc)]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the client wheel (built from qwen_tray_client/) and its one dependency, nothing else."""
    work = tmp_path_factory.mktemp("client")
    wheels = work / "wheels"
    source = work / "ipc"  # a copy: building in the checkout would leave build/ and egg-info there
    shutil.copytree(ROOT / "ipc", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("qwen_tray_client-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--only-binary=:all:", str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return venv


def test_the_client_wheel_holds_the_client_and_depends_on_pyzmq_only(client_venv: Path) -> None:
    (wheel,) = (client_venv.parent / "wheels").glob("qwen_tray_client-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    modules = sorted(n for n in names if n.endswith(".py"))
    assert modules == ["qwen_tray_client/__init__.py", "qwen_tray_client/client.py",
                       "qwen_tray_client/connection.py", "qwen_tray_client/protocol.py",
                       "qwen_tray_client/win32.py"]  # no server half: it lives in the daemon (qwen_tray.ipc_server)
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert requires == ["pyzmq>=26"]
    listed = subprocess.run([str(client_venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    installed = {row["name"].lower() for row in json.loads(listed)}
    assert installed - {"pip", "setuptools", "wheel"} == {"pyzmq", "qwen-tray-client"}


def test_the_client_alone_asks_a_running_daemon(client_venv: Path, tmp_path: Path) -> None:
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([*qwen_tray_cmd(), "run", "--headless"], env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=log)
    conn = default_paths().connection_file
    try:
        deadline = time.monotonic() + 120  # a hang guard for start-up, not a speed check
        while not conn.exists():
            assert daemon.poll() is None and time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()
            time.sleep(0.2)
        image = tmp_path / "red.png"
        image.write_bytes(png(64, 64, (200, 30, 30)))
        script = tmp_path / "ask.py"
        script.write_text(CLIENT_SCRIPT, encoding="utf-8")
        run = subprocess.run([str(client_venv / "bin" / "python"), "-I", str(script), str(image)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path, env=subprocess_env())
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout)
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()
    assert out["found"] == {"openvino": False, "qwen_tray": False, "PIL": False, "numpy": False,
                            "platformdirs": False}
    assert out["connection"] == str(conn)
    assert out["status"]["state"] in ("ready", "busy", "loading")
    assert out["result"]["finish_reason"] == "length"
    assert out["result"]["usage"]["completion_tokens"] == 12
    assert "".join(out["chunks"]) == out["result"]["text"] and out["chunks"]
    assert out["rejected"][0] == "bad_image"  # a clear refusal, and the connection goes on working
