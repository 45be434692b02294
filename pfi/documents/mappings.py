"""Each lab's LOINC mapping file, loaded once and reloaded when the lab's biologists fix it.

The file is checked whole (`LoincMapping.from_csv` names the line at fault). At start a
broken file stops the stage with that message; later, a broken edit keeps the mapping
in use and logs the error, so a typo never turns every result into "unmapped". A missing
file means no mapping yet: every local code is unmapped and the source's policy applies
(hold or keep_local); it is logged once.

Reload is a `stat()` per use (mtime and size): cheap next to building a document, and an
operator who fixed the mapping releases the held documents without restarting PFI.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from pfi.transforms.lab.loinc import LoincMapping, MappingError

log = logging.getLogger(__name__)

EMPTY = LoincMapping({})


class MappingFileError(ValueError):
    """A mapping file that cannot be used, with its path and the line at fault."""


@dataclass
class _Loaded:
    mapping: LoincMapping
    stamp: tuple[float, int] | None


class LoincMappings:
    """Source name → its current mapping (thread-safe)."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self._paths = dict(paths)
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    def check_all(self) -> None:
        """Load every file now: raise `MappingFileError` for a broken one (start-up)."""
        for source in self._paths:
            self._load(source, strict=True)

    def path(self, source: str) -> Path | None:
        return self._paths.get(source)

    def get(self, source: str) -> LoincMapping:
        if source not in self._paths:
            return EMPTY
        return self._load(source, strict=False)

    def _load(self, source: str, *, strict: bool) -> LoincMapping:
        path = self._paths[source]
        try:
            st = path.stat()
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            current = self._loaded.get(source)
            if current is not None and current.stamp == stamp:
                return current.mapping
            if stamp is None:
                log.warning(
                    "no LOINC mapping for source %s (%s missing): every local code is unmapped",
                    source,
                    path,
                )
                self._loaded[source] = _Loaded(EMPTY, None)
                return EMPTY
            try:
                mapping = LoincMapping.from_csv(path.read_text(encoding="utf-8"))
            except (MappingError, UnicodeDecodeError, OSError) as exc:
                if strict or current is None:
                    raise MappingFileError(f"{path}: {exc}") from exc
                log.error("%s: %s; keeping the mapping loaded before", path, exc)
                self._loaded[source] = _Loaded(current.mapping, stamp)
                return current.mapping
            if current is not None:
                log.info("LOINC mapping of %s reloaded: %d codes", source, len(mapping))
            self._loaded[source] = _Loaded(mapping, stamp)
            return mapping
