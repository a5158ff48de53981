"""Reading the knowledge base from disk: the one place it touches files.

Only regular files under the docs folder are read: an address `library` accepts can
still name a symbolic link, so the resolved file must lie inside the resolved folder.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from controlplane.knowledge import library

# A document is a page of text; anything larger is not one of ours.
LARGEST = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    path: str  # repository-relative
    url: str
    title: str

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)


def _inside(root: Path, candidate: Path) -> bool:
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_relative_to(root.resolve()) and resolved.is_file()


def _read(file: Path) -> str | None:
    try:
        if file.stat().st_size > LARGEST:
            return None
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def find(root: Path, url_path: str, urls: library.Urls = library.SITE) -> library.Document | None:
    """The document /docs/<url_path>/ shows, read from `root` (the docs folder); None
    when the address is refused or names no readable file inside it."""
    for path in library.files_for(url_path):
        file = root.parent / path
        if _inside(root, file):
            text = _read(file)
            if text is not None:
                return library.render(text, path, urls)
    return None


def catalogue(root: Path, urls: library.Urls = library.SITE) -> list[Entry]:
    """Every document under `root` that has an address, by folder, each folder's index
    (README.md) first."""
    entries = []
    for file in root.rglob(f"*{library.SUFFIX}"):
        inside = file.relative_to(root).as_posix()
        if not library.is_address(inside.removesuffix(library.SUFFIX)) or not _inside(root, file):
            continue
        text = _read(file)
        if text is None:
            continue
        path = f"{library.ROOT}/{inside}"
        entries.append(Entry(path, library.url_for(path, urls), library.title_of(text, path)))
    return sorted(entries, key=lambda e: (e.folder, not _is_index(e.path), e.path))


def _is_index(path: str) -> bool:
    return path.endswith(f"/{library.INDEX}{library.SUFFIX}")
