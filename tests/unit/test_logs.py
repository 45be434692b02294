"""Structured logs carry the correlation id of the message or document being handled."""

import asyncio
import io
import json
import logging
from contextvars import copy_context
from threading import Thread

import pytest

from pfi.observability.logs import (
    configure_logging,
    correlation_scope,
    current_correlation_id,
    message_correlation_id,
)


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def json_lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_records_carry_the_correlation_id_and_extra_fields(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("pfi.adapters.mllp")
    with correlation_scope(message_correlation_id("SGL", "LAB", "MSG00042")):
        log.info("message %s stored", "ORU^R01", extra={"source": "SGL", "bytes": 2048})
    log.info("listener idle")

    first, second = json_lines(out)
    assert first["msg"] == "message ORU^R01 stored"
    assert first["correlation_id"] == "SGL|LAB|MSG00042"
    assert (first["level"], first["logger"]) == ("INFO", "pfi.adapters.mllp")
    assert (first["source"], first["bytes"]) == ("SGL", 2048)
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["correlation_id"] is None


def test_scopes_nest_and_restore(restore_root):
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)
    log = logging.getLogger("pfi.documents")
    with correlation_scope("SGL|LAB|MSG1"):
        with correlation_scope("doc-1.2.250.1.999.1"):
            log.debug("built")
        log.debug("back")
    assert [r["correlation_id"] for r in json_lines(out)] == ["doc-1.2.250.1.999.1", "SGL|LAB|MSG1"]
    assert current_correlation_id() is None


def test_records_of_any_library_get_the_id(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    with correlation_scope("RIS|RAD|42"):
        logging.getLogger("kafka.producer").warning("retrying")
    assert json_lines(out)[0]["correlation_id"] == "RIS|RAD|42"


def test_concurrent_tasks_keep_their_own_ids(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("pfi.stage")

    async def handle(cid, delay):
        with correlation_scope(cid):
            await asyncio.sleep(delay)
            log.info("done %s", cid)

    async def main():
        await asyncio.gather(handle("A|X|1", 0.02), handle("B|X|2", 0.0))

    asyncio.run(main())
    assert {(r["msg"], r["correlation_id"]) for r in json_lines(out)} == {
        ("done A|X|1", "A|X|1"),
        ("done B|X|2", "B|X|2"),
    }


def test_a_thread_keeps_the_id_when_run_in_a_copied_context(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    with correlation_scope("SGL|LAB|7"):
        context = copy_context()
    thread = Thread(target=context.run, args=(logging.getLogger("pfi.pool").info, "in thread"))
    thread.start()
    thread.join(timeout=5)
    assert json_lines(out)[0]["correlation_id"] == "SGL|LAB|7"


def test_exceptions_are_one_json_line(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    try:
        raise ValueError("PID-3 missing")
    except ValueError:
        logging.getLogger("pfi").exception("cannot build")
    [record] = json_lines(out)
    assert "ValueError: PID-3 missing" in record["exc"]


def test_text_format_shows_the_id_in_brackets(restore_root):
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    with correlation_scope("SGL|LAB|MSG00042"):
        logging.getLogger("pfi.mllp").info("ACK AA sent", extra={"source": "SGL"})
    line = out.getvalue().strip()
    assert "INFO    pfi.mllp [SGL|LAB|MSG00042] ACK AA sent source='SGL'" in line


def test_file_output_and_reconfiguring_does_not_duplicate_lines(restore_root, tmp_path):
    path = tmp_path / "logs" / "pfi.log"
    configure_logging("INFO", "json", path, stream=io.StringIO())
    configure_logging("WARNING", "json", path, stream=io.StringIO())
    logging.getLogger("pfi").info("filtered out")
    logging.getLogger("pfi").warning("kept")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["kept"]


def test_bad_settings_are_refused(restore_root):
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD", "json")
    with pytest.raises(ValueError, match="empty"), correlation_scope(""):
        pass
