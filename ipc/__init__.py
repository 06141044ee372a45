"""qwen-tray's ZeroMQ client and protocol: ask the running qwen-tray daemon from any local Python program.

    from qwen_tray_client import Client

    with Client() as client:
        for chunk in client.ask("shot.png", "What does this error mean?"):
            print(chunk, end="", flush=True)

Its own distribution (`pip install ./ipc`, name `qwen-tray-client`), with pyzmq as its only dependency:
no OpenVINO, no Pillow, nothing of the daemon. The daemon (`qwen_tray`) depends on it for the protocol.
"""

from .client import (
    Answer,
    Client,
    ClientError,
    ConnectionFileError,
    DaemonNotRunning,
    DaemonTimeout,
    GenerationFailed,
    RawImage,
    RequestRejected,
)
from .protocol import PROTOCOL

__all__ = ["PROTOCOL", "Answer", "Client", "ClientError", "ConnectionFileError", "DaemonNotRunning",
           "DaemonTimeout", "GenerationFailed", "RawImage", "RequestRejected"]
