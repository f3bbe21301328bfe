"""Content-addressed files: ``<data_dir>/media/ab/cd/<sha256>``. The client's file name never
reaches the path (checklist 28), and writing the same bytes twice is a no-op. Directories are 0700
and files 0600: attachments are the workspace's, not the machine's."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def save(self, data: bytes) -> str:
        """Write durably (fsync, then an atomic rename) and return the digest. Blocking: run in a thread.
        A failed write (a full disk, say) leaves no temporary file behind and raises its OSError."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.parent.parent.mkdir(mode=0o700, exist_ok=True)  # one at a time: parents=True ignores mode
        target.parent.mkdir(mode=0o700, exist_ok=True)
        # mkstemp: 0600 whatever the umask, and a name of its own, so two writers of the same bytes
        # (two threads, two processes) never share a temporary file.
        fd, tmp = tempfile.mkstemp(prefix=f".{digest}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest
