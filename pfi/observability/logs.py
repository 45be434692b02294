"""Structured logs with a correlation id, so one report can be followed from MLLP to DMP.

Every stage handling a message or a document wraps its work in
`correlation_scope(...)`: the id (sender + MSH-10 such as `SGL|LAB|MSG00042`, or a
document id) is kept in a context variable and stamped on every log record emitted
inside the scope, by any logger, including third-party libraries. Searching the logs
for that id then shows the whole journey: received, ACKed, built, routed, delivered.

Context variables follow asyncio tasks, but not threads: run work submitted to a thread
pool through `contextvars.copy_context().run(...)` to keep the id.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

_correlation_id: ContextVar[str | None] = ContextVar("pfi_correlation_id", default=None)

#: LogRecord attributes that are not "extra" fields passed by the caller.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "correlation_id",
    "taskName",
}


def current_correlation_id() -> str | None:
    """The id of the message or document being handled in this context, if any."""
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[str]:
    """Stamp `correlation_id` on every log record emitted inside the block.

    Scopes nest: the inner id applies inside, the outer one again after it.
    """
    if not correlation_id:
        raise ValueError("a correlation id must not be empty")
    token = _correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation_id.reset(token)


def message_correlation_id(sending_application: str, sending_facility: str, control_id: str) -> str:
    """`SGL|LAB|MSG00042`: MSH-3, MSH-4 and MSH-10, the identity of an HL7 message."""
    return f"{sending_application}|{sending_facility}|{control_id}"


class CorrelationFilter(logging.Filter):
    """Adds `record.correlation_id` (None outside any scope) for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = _correlation_id.get()
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, correlation_id, then extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        for key, value in _extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger [correlation id] msg key=value...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        correlation = getattr(record, "correlation_id", None)
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}"
        if correlation:
            line += f" [{correlation}]"
        line += f" {record.getMessage()}"
        extras = _extra_fields(record)
        if extras:
            line += " " + " ".join(f"{k}={v!r}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _PfiHandlerMark:
    """Marks the handlers configure_logging installed, to replace them on a second call."""


def configure_logging(
    level: str | int = "INFO",
    format: LogFormat = "text",  # the name pfi.yaml uses (logging.format)
    file: Path | None = None,
    *,
    stream: TextIO | None = None,
) -> None:
    """Send every logger's records to stderr (or `stream`) and optionally to `file`.

    Calling it again replaces what the previous call installed (a reload must not
    double every line). The file is opened in append mode with a WatchedFileHandler, so
    logrotate can move it away.
    """
    if format not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {format!r}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"log level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    formatter: logging.Formatter = JsonFormatter() if format == "json" else TextFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.WatchedFileHandler(file, encoding="utf-8"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_pfi", None) is _PfiHandlerMark]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(CorrelationFilter())
        handler._pfi = _PfiHandlerMark  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(numeric)
