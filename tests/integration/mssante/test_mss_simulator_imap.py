"""The simulator's IMAP side is strict where real servers are: FETCH BODY[] marks \\Seen,
BODY.PEEK[] does not, nothing works before LOGIN, unknown commands are BAD."""

from __future__ import annotations

import imaplib
import socket
from collections.abc import Iterator

import pytest

from pfi.simulators.mssante import MssSimulator
from tests.support.mss import APP, APP_PASSWORD

MAIL = b"From: a@b.mssante.fr\r\nTo: pfi@hopital.mssante.fr\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def sim() -> Iterator[MssSimulator]:
    with MssSimulator(smtp_port=0, imap_port=0, http_port=0, mailboxes={APP: APP_PASSWORD}) as s:
        s.inject(APP, MAIL)
        s.inject(APP, MAIL)
        yield s


@pytest.fixture
def imap(sim: MssSimulator) -> Iterator[imaplib.IMAP4]:
    conn = imaplib.IMAP4("127.0.0.1", sim.imap_port, timeout=5)
    yield conn
    conn.shutdown()


def _raw_session(port: int, commands: list[bytes]) -> list[bytes]:
    """Send raw command lines; return the tagged answer to each (imaplib would refuse)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        answers = []
        for n, command in enumerate(commands):
            tag = f"t{n}".encode()
            sock.sendall(tag + b" " + command + b"\r\n")
            for _ in range(50):
                line = reader.readline()
                if line.startswith(tag + b" ") or not line:
                    answers.append(line.strip())
                    break
        return answers


def test_commands_before_login_and_unknown_commands_are_refused(sim):
    answers = _raw_session(
        sim.imap_port, [b"SELECT INBOX", b"UID FETCH 1 (BODY[])", b"IDLE", b"XYZZY"]
    )
    assert answers == [
        b"t0 NO LOGIN first",
        b"t1 NO LOGIN first",
        b"t2 BAD unknown or unsupported command IDLE",
        b"t3 BAD unknown or unsupported command XYZZY",
    ]


def test_peek_keeps_unseen_and_body_marks_seen(imap):
    imap.login(APP, APP_PASSWORD)
    typ, data = imap.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    assert imap.untagged_responses.get("UIDVALIDITY")
    imap.uid("FETCH", "1", "(BODY.PEEK[])")
    assert imap.uid("SEARCH", None, "UNSEEN")[1] == [b"1 2"]
    typ, data = imap.fetch("2", "(RFC822)")
    assert data[0][1] == MAIL and b"\\Seen" in data[-1] + data[0][0]
    assert imap.uid("SEARCH", None, "UNSEEN")[1] == [b"1"]
    imap.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    assert imap.search(None, "UNSEEN")[1] == [b""]
    assert imap.search(None, "SEEN")[1] == [b"1 2"]


def test_unsupported_search_key_is_bad(imap):
    imap.login(APP, APP_PASSWORD)
    imap.select("INBOX")
    with pytest.raises(imaplib.IMAP4.error, match="search keys supported"):
        imap.search(None, "FROM", "x")


def test_wrong_password_is_no(imap):
    with pytest.raises(imaplib.IMAP4.error, match="invalid credentials"):
        imap.login(APP, "wrong")
