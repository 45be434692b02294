"""Polling the application mailbox over IMAP (imaplib, stdlib).

Everything addressed to PFI lands there: DSNs, MDNs, opposition auto-replies and the
documents correspondents send. The poller reads unseen messages without marking them
(BODY.PEEK[]), hands each to the caller, and sets \\Seen only once the caller returned:
a crash in between leaves the message unseen, so it is read again at the next poll
(at-least-once; the consumers are idempotent on Message-ID). UIDs are used throughout,
so a concurrent expunge does not shift what we mark.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from pfi.adapters.mssante.smtp import client_ssl_context
from pfi.config.mssante import MssImapSettings

_UID = re.compile(rb"\bUID (\d+)")
T = TypeVar("T")


class MssImapError(RuntimeError):
    """The mailbox cannot be read (login refused, mailbox missing, server error)."""


@dataclass(frozen=True, slots=True)
class FetchedMail:
    uid: int
    raw: bytes


class MssImapPoller:
    def __init__(
        self, settings: MssImapSettings, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings = settings
        self._ssl_context = ssl_context
        self._conn: imaplib.IMAP4 | None = None
        self.uidvalidity: int | None = None
        self.connections_opened = 0

    def __enter__(self) -> MssImapPoller:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()

    # -- reading --------------------------------------------------------------------------

    def fetch_unseen(
        self, limit: int | None = None, exclude: Collection[int] = ()
    ) -> list[FetchedMail]:
        """Unseen messages, oldest first, at most `limit` (default: settings.batch_size).

        `exclude`: UIDs the caller leaves unseen on purpose (mail for another consumer of
        the mailbox, a report it cannot apply yet), so that they do not fill every batch.
        """
        return self._retrying(lambda conn: self._fetch_unseen(conn, limit, exclude))

    def mark_processed(self, uids: list[int]) -> None:
        if uids:
            self._retrying(lambda conn: self._store_seen(conn, uids))

    def poll(self, handle: Callable[[FetchedMail], None], limit: int | None = None) -> int:
        """Hand each unseen message to `handle`; mark it \\Seen when `handle` returned.

        A message whose handler raised stays unseen and the exception propagates, after
        the messages already handled have been marked.
        """
        done: list[int] = []
        try:
            for mail in self.fetch_unseen(limit):
                handle(mail)
                done.append(mail.uid)
        finally:
            self.mark_processed(done)
        return len(done)

    # -- protocol -------------------------------------------------------------------------

    def _fetch_unseen(
        self, conn: imaplib.IMAP4, limit: int | None, exclude: Collection[int] = ()
    ) -> list[FetchedMail]:
        skip = set(exclude)
        uids = [u for u in self._search_unseen(conn) if u not in skip]
        uids = uids[: limit or self.settings.batch_size]
        mails = []
        for uid in uids:
            typ, data = conn.uid("FETCH", str(uid), "(UID BODY.PEEK[])")
            _check(typ, data, f"UID FETCH {uid}")
            raw = _literal(data)
            if raw is not None:  # None: expunged meanwhile
                mails.append(FetchedMail(uid, raw))
        return mails

    def _search_unseen(self, conn: imaplib.IMAP4) -> list[int]:
        typ, data = conn.uid("SEARCH", None, "UNSEEN")
        _check(typ, data, "UID SEARCH UNSEEN")
        found = b" ".join(d for d in data if isinstance(d, bytes)).split()
        return sorted(int(x) for x in found)

    def _store_seen(self, conn: imaplib.IMAP4, uids: list[int]) -> None:
        uid_set = ",".join(str(u) for u in sorted(uids))
        typ, data = conn.uid("STORE", uid_set, "+FLAGS", "(\\Seen)")
        _check(typ, data, f"UID STORE {uid_set} +FLAGS (\\Seen)")

    def _retrying(self, action: Callable[[imaplib.IMAP4], T]) -> T:
        for attempt in (1, 2):
            conn = self._ensure()
            try:
                return action(conn)
            except (imaplib.IMAP4.abort, OSError, ssl.SSLError):
                self._conn = None
                with contextlib.suppress(OSError):
                    conn.shutdown()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure(self) -> imaplib.IMAP4:
        if self._conn is not None:
            return self._conn
        s = self.settings
        context = self._ssl_context
        if context is None and s.tls_mode != "none":
            context = client_ssl_context(s.tls)
        conn: imaplib.IMAP4
        if s.tls_mode == "implicit":
            conn = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout_s)
        else:
            conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout_s)
        try:
            if s.tls_mode == "starttls":
                conn.starttls(ssl_context=context)
            if s.username is not None and s.password is not None:
                conn.login(s.username, s.password.get_secret_value())
            typ, data = conn.select(_quote(s.mailbox))
            _check(typ, data, f"SELECT {s.mailbox}")
            validity = conn.untagged_responses.get("UIDVALIDITY", [b""])[-1]
            self.uidvalidity = int(validity) if validity and validity.isdigit() else None
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise MssImapError(f"{s.host}:{s.port} {s.mailbox}: {exc}") from exc
        except BaseException:
            conn.shutdown()
            raise
        self._conn = conn
        self.connections_opened += 1
        return conn


def _check(typ: str, data: list[object], command: str) -> None:
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise MssImapError(f"{command} answered {typ}: {detail}")


def _literal(data: list[object]) -> bytes | None:
    """The message bytes of a single-message FETCH answer."""
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and _UID.search(item[0]) is not None:
            return bytes(item[1])
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return bytes(item[1])
    return None


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
