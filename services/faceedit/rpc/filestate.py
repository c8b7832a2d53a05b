"""Cheap change detection for files reloaded while serving (certificates, token hashes)."""

from __future__ import annotations

import os
from pathlib import Path


def file_signature(path: str | os.PathLike[str]) -> tuple[int, int, int, int] | None:
    """What changes whenever the file is rewritten, replaced, or swapped under a Kubernetes Secret volume's ..data
    symlink (inode, size, mtime, ctime); None while it cannot be stat'ed. One stat: microseconds."""
    try:
        st = os.stat(Path(path))
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns
