"""Model hubs behind one small interface: list a repo's files (size, hash) and fetch one file resumably.

Why the hubs' own clients: they follow the hubs' redirects, tokens and storage back-ends, and
they resume. `huggingface_hub.hf_hub_download(local_dir=...)` keeps a partial file as
`.cache/huggingface/download/<file>.incomplete` and continues it with an HTTP Range request, both
after a dropped connection and in the next run. What they do not do, we do here: pin one
revision for every file, verify each finished file against the hash the hub publishes (sha256
for LFS files, the git blob id for the small ones), and retry a dropped connection a bounded
number of times, each retry resuming where the last one stopped.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

RETRIES = 5  # per file; each retry resumes the partial file
RETRY_WAIT_S = 2.0
# huggingface_hub writes a download to disk in chunks of constants.DOWNLOAD_CHUNK_SIZE (10 MB) and a
# dropped connection loses the unwritten chunk: smaller chunks keep what arrived (at no measurable cost).
CHUNK_BYTES = 64 * 1024


class HubError(RuntimeError):
    """A hub that cannot be reached or a file that cannot be had; the message says what to do."""


class Corrupt(HubError):
    """A downloaded file whose size or hash is not what the hub published."""


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the repo root
    size: int | None
    sha256: str | None = None  # LFS files (weights)
    git_sha1: str | None = None  # every file on the HF hub (git blob id)


class Source(Protocol):
    label: str  # "Hugging Face" | "ModelScope"
    model_id: str
    revision: str

    def list_files(self) -> list[RemoteFile]: ...

    def fetch(self, f: RemoteFile, dest_dir: Path) -> Path: ...

    def forget_partial(self, f: RemoteFile, dest_dir: Path) -> None: ...


def _offline(label: str, model_id: str, exc: BaseException) -> HubError:
    return HubError(
        f"could not download {model_id} from {label} ({type(exc).__name__}): you seem to be offline; "
        "download the model folder on another machine, copy it here and run `qwen-tray model export SRC OUT`"
    )


class HfSource:
    """The Hugging Face hub (or whatever HF_ENDPOINT points at)."""

    label = "the Hugging Face hub"

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.revision = "main"

    def list_files(self) -> list[RemoteFile]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        try:
            info = HfApi().model_info(self.model_id, files_metadata=True)
        except GatedRepoError:
            raise HubError(f"{self.model_id} is gated on the Hugging Face hub: accept its terms there and run "
                           "`hf auth login` first") from None
        except RepositoryNotFoundError:
            raise HubError(f"{self.model_id} was not found on the Hugging Face hub: check the id") from None
        except OSError as exc:  # requests' errors and OfflineModeIsEnabled are OSErrors
            raise _offline(self.label, self.model_id, exc) from None
        self.revision = info.sha or "main"  # every file from the same commit
        return [RemoteFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None, s.blob_id)
                for s in info.siblings or []]

    def fetch(self, f: RemoteFile, dest_dir: Path) -> Path:
        from huggingface_hub import constants, hf_hub_download

        constants.DOWNLOAD_CHUNK_SIZE = CHUNK_BYTES
        return Path(hf_hub_download(self.model_id, f.path, revision=self.revision, local_dir=str(dest_dir)))

    def forget_partial(self, f: RemoteFile, dest_dir: Path) -> None:
        """Drop a refused file and huggingface_hub's notes on it, so the next run downloads it afresh."""
        (dest_dir / f.path).unlink(missing_ok=True)
        meta = dest_dir / ".cache" / "huggingface" / "download"
        for p in meta.glob(f"{f.path}.*"):
            p.unlink(missing_ok=True)


class ModelScopeSource:
    """ModelScope, through the `modelscope` package (the `modelscope` extra)."""

    label = "ModelScope"

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.revision = "master"

    def _api(self):
        try:
            from modelscope.hub.api import HubApi
        except ImportError:
            raise HubError("--source modelscope needs the modelscope package: pip install 'qwen-tray[modelscope]'") \
                from None
        return HubApi()

    def list_files(self) -> list[RemoteFile]:
        api = self._api()
        try:
            try:
                # modelscope >= 1.40 delegates to modelscope-hub, whose listing keeps the sha256 that the
                # legacy `get_model_files` wrapper there drops (it returns only path and size).
                from modelscope_hub import HubApi as NewHubApi
            except ImportError:
                entries = api.get_model_files(self.model_id, recursive=True)
                return [RemoteFile(e["Path"], e.get("Size"), e.get("Sha256") or None) for e in entries
                        if e.get("Type") != "tree"]
            files = NewHubApi().list_repo_files(self.model_id, "model", recursive=True)
            return [RemoteFile(f.path, f.size, f.sha256 or None) for f in files if f.type != "tree"]
        except Exception as exc:  # noqa: BLE001 - modelscope raises plain exceptions for network failures
            raise _offline(self.label, self.model_id, exc) from None

    def fetch(self, f: RemoteFile, dest_dir: Path) -> Path:
        from modelscope.hub.file_download import model_file_download

        return Path(model_file_download(self.model_id, f.path, local_dir=str(dest_dir)))

    def forget_partial(self, f: RemoteFile, dest_dir: Path) -> None:
        (dest_dir / f.path).unlink(missing_ok=True)


def make_source(kind: str, model_id: str) -> Source:
    if kind == "hf":
        return HfSource(model_id)
    if kind == "modelscope":
        return ModelScopeSource(model_id)
    raise HubError(f"source must be hf or modelscope, not {kind!r}")


def file_hashes(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file, read once in 8 MB blocks."""
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        while block := fh.read(8 * 1024 * 1024):
            sha256.update(block)
            sha1.update(block)
    return sha256.hexdigest(), sha1.hexdigest()


def verify(f: RemoteFile, path: Path) -> None:
    """Raise Corrupt unless `path` has the size and hash the hub published for `f`."""
    size = path.stat().st_size
    if f.size is not None and size != f.size:
        raise Corrupt(f"{f.path}: {size} bytes downloaded, the hub lists {f.size}")
    if not (f.sha256 or f.git_sha1):
        return
    sha256, sha1 = file_hashes(path)
    if f.sha256 and sha256 != f.sha256:
        raise Corrupt(f"{f.path}: sha256 {sha256[:16]}... does not match the published {f.sha256[:16]}...")
    if not f.sha256 and f.git_sha1 and sha1 != f.git_sha1:
        raise Corrupt(f"{f.path}: git blob id {sha1[:12]}... does not match the published {f.git_sha1[:12]}...")


def _transient(exc: BaseException) -> bool:
    """A network hiccup worth resuming after (not a missing file or a refused token)."""
    import requests

    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status >= 500 or status in (408, 429)
    # Dropped connections (ChunkedEncodingError / ConnectionError), timeouts, and huggingface_hub's
    # "Consistency check failed" size mismatch after a cut stream are all OSErrors.
    return isinstance(exc, OSError)


def fetch_verified(source: Source, f: RemoteFile, dest_dir: Path, say: Callable[[str], None] = print,
                   retries: int = RETRIES, wait_s: float = RETRY_WAIT_S) -> Path:
    """Download one file into `dest_dir` (resuming a partial one), retrying dropped connections, then verify it.

    A file that fails verification is deleted (with its partial) and Corrupt is raised: the hub
    or the network gave us wrong bytes, and a retry should start from zero, not resume them.
    """
    for attempt in range(retries + 1):
        try:
            path = source.fetch(f, dest_dir)
            break
        except HubError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            if attempt >= retries or not _transient(exc):
                raise HubError(f"could not download {f.path} from {source.label} "
                               f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}); "
                               "run the same `qwen-tray model pull` again to resume") from None
            say(f"connection lost while downloading {f.path} ({type(exc).__name__}); resuming in {wait_s:.0f} s "
                f"(retry {attempt + 1} of {retries})")
            time.sleep(wait_s)
    try:
        verify(f, path)
    except Corrupt:
        source.forget_partial(f, dest_dir)
        raise
    return path
