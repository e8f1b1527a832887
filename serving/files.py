"""Files rasid writes and hashes: every write is atomic, with one permission policy, and hashes stream.

Atomic: a file or folder is written under a temporary name beside its destination and renamed into place, so a
reader (a server loading a bundle, a resumed run reading its progress record) sees the old version or the new
one, never half of either, and a crash leaves at most a hidden temporary behind.

Permissions: what the user's umask gives an ordinary file or folder (0o666 & ~umask, 0o777 & ~umask), whatever
the temporary was created with (mkstemp and mkdtemp make them private, safetensors writes 0o600). With the usual
umask 022 that is 0o644 / 0o755; with 027 it is 0o640 / 0o750, so a bundle stays readable by the group that runs
the service and by nobody else. Set the umask of the training or export job to choose.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

READ_BLOCK = 1 << 20


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~_umask()


def folder_mode() -> int:
    return 0o777 & ~_umask()


def apply_modes(path: Path) -> None:
    """Give `path` (and, for a folder, everything under it) the policy's modes."""
    path = Path(path)
    files, folders = file_mode(), folder_mode()
    if path.is_dir():
        for root, _folders, names in os.walk(path):
            os.chmod(root, folders)
            for name in names:
                os.chmod(os.path.join(root, name), files)
    else:
        os.chmod(path, files)


def publish(temporary: Path, path: Path) -> None:
    """Move a finished temporary file into place with the policy's mode (for writers that manage their own
    temporary file, such as Parquet's)."""
    apply_modes(temporary)
    os.replace(temporary, path)


@contextmanager
def atomic_file(
    path: Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing; on a clean exit it replaces `path`, on an error it is
    removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".writing")
    binary = "b" in mode
    try:
        with os.fdopen(
            handle, mode, encoding=None if binary else encoding, newline=None if binary else newline
        ) as stream:
            yield stream
        publish(Path(temporary), path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_file(path) as stream:
        stream.write(text)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temporary folder beside `path` to fill; on a clean exit it replaces `path` (an earlier folder there is
    removed once the new one is in place), on an error it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.writing-", dir=path.parent))
    try:
        yield temporary
        apply_modes(temporary)
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(temporary, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def hash_into(digest, path: Path) -> None:
    """Feed a file's bytes into a hashlib digest, a block at a time (data files can be gigabytes)."""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(READ_BLOCK), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    hash_into(digest, path)
    return digest.hexdigest()
