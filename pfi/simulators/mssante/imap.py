"""A minimal IMAP4rev1 server (RFC 3501 subset) for the application mailboxes.

Why our own: the Python IMAP servers at hand are either test doubles inside other
projects or Twisted's (a large dependency for five commands). PFI's poller needs
CAPABILITY, LOGIN, SELECT/EXAMINE, (UID) SEARCH, (UID) FETCH, (UID) STORE, NOOP, CHECK,
CLOSE, EXPUNGE, STARTTLS and LOGOUT on one INBOX, and that is what this serves, strictly:
an unknown command or search key is BAD, FETCH of BODY[] or RFC822 sets \\Seen as a real
server does (only BODY.PEEK[] does not), and a command before LOGIN is refused.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable

from pfi.simulators.mssante.state import ImapEntry, Mailbox, SimulatorState

_SYSTEM_FLAGS = "\\Seen \\Answered \\Flagged \\Deleted \\Draft"
_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"|(\()|(\))|([^\s()"]+))')
_ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "LOGIN"})
_AUTH_STATE = frozenset({"SELECT", "EXAMINE"})
_UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE"})
_SELECTED_STATE = frozenset({"FETCH", "SEARCH", "STORE", "CHECK", "CLOSE", "EXPUNGE"})
_MAX_LINE = 64 * 1024


class _Bad(Exception):
    pass


def _tokens(line: bytes) -> list[object]:
    """Atoms, quoted strings and nested parenthesised lists of one command line."""
    stack: list[list[object]] = [[]]
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None or m.end() == pos:
            if line[pos:].strip() == b"":
                break
            raise _Bad(f"cannot parse near {line[pos : pos + 20]!r}")
        pos = m.end()
        quoted, opening, closing, atom = m.groups()
        if quoted is not None:
            stack[-1].append(re.sub(rb"\\(.)", rb"\1", quoted).decode("utf-8", "replace"))
        elif opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                raise _Bad("unbalanced parenthesis")
            inner = stack.pop()
            stack[-1].append(inner)
        elif atom is not None:
            stack[-1].append(atom.decode("utf-8", "replace"))
    if len(stack) != 1:
        raise _Bad("unbalanced parenthesis")
    return stack[0]


def _sequence(spec: str, values: list[int]) -> list[int]:
    """Members of `values` (sorted ascending) named by an IMAP sequence set ('1:3,7,9:*')."""
    if not values:
        return []
    top = values[-1]
    wanted: set[int] = set()
    for part in spec.split(","):
        lo_s, _, hi_s = part.partition(":")
        try:
            lo = top if lo_s == "*" else int(lo_s)
            hi = lo if not hi_s else (top if hi_s == "*" else int(hi_s))
        except ValueError:
            raise _Bad(f"bad sequence set {spec!r}") from None
        lo, hi = min(lo, hi), max(lo, hi)
        wanted.update(v for v in values if lo <= v <= hi)
    return sorted(wanted)


class ImapSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state: SimulatorState,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.state = state
        self.tls_context = tls_context
        self.tls = implicit_tls
        self.user: str | None = None
        self.mailbox: Mailbox | None = None
        self.read_only = False

    async def run(self) -> None:
        with self.state.lock:
            self.state.imap_connections += 1
        caps = self._capabilities()
        await self._send(f"* OK [CAPABILITY {caps}] PFI MSSanté simulator IMAP4rev1 ready")
        try:
            while True:
                line = await self._read_command()
                if line is None:
                    return
                tag, _, rest = line.partition(b" ")
                tag_s = tag.decode("ascii", "replace")
                if not tag or not rest:
                    await self._send(f"{tag_s or '*'} BAD missing command")
                    continue
                try:
                    done = await self._dispatch(tag_s, rest)
                except _Bad as exc:
                    await self._send(f"{tag_s} BAD {exc}")
                    continue
                if done:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writer.close()

    async def _read_command(self) -> bytes | None:
        """One command, with any {n} literals spliced in (after a '+' continuation)."""
        parts: list[bytes] = []
        while True:
            line = await self.reader.readline()
            if not line:
                return None
            if len(line) > _MAX_LINE:
                raise ConnectionError("command line too long")
            line = line.rstrip(b"\r\n")
            m = re.search(rb"\{(\d+)\}$", line)
            if m is None:
                parts.append(line)
                return b"".join(parts)
            size = int(m.group(1))
            await self._send("+ Ready for literal data")
            data = await self.reader.readexactly(size)
            quoted = b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            parts.append(line[: m.start()] + quoted)

    async def _send(self, text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.writer.write(data + b"\r\n")
        await self.writer.drain()

    def _capabilities(self) -> str:
        caps = ["IMAP4rev1", "UIDPLUS"]
        if self.tls_context is not None and not self.tls:
            caps.append("STARTTLS")
        return " ".join(caps)

    async def _dispatch(self, tag: str, rest: bytes) -> bool:
        args = _tokens(rest)
        if not args:
            raise _Bad("missing command")
        command, args, by_uid = str(args[0]).upper(), args[1:], False
        if command == "UID":
            if not args:
                raise _Bad("UID needs a command")
            command, args, by_uid = str(args[0]).upper(), args[1:], True
            if command not in _UID_COMMANDS:
                raise _Bad(f"UID {command} is not supported")
        if command not in _ANY_STATE | _AUTH_STATE | _SELECTED_STATE:
            raise _Bad(f"unknown or unsupported command {command}")
        if command not in _ANY_STATE and self.user is None:
            await self._send(f"{tag} NO LOGIN first")
            return False
        if command in _SELECTED_STATE and self.mailbox is None:
            await self._send(f"{tag} NO no mailbox selected (SELECT first)")
            return False
        if command in _UID_COMMANDS:
            await getattr(self, f"_cmd_{command.lower()}")(tag, args, by_uid)
            return False
        return bool(await getattr(self, f"_cmd_{command.lower()}")(tag, args))

    # -- any state ------------------------------------------------------------------------

    async def _cmd_capability(self, tag: str, args: list[object]) -> None:
        await self._send(f"* CAPABILITY {self._capabilities()}")
        await self._send(f"{tag} OK CAPABILITY completed")

    async def _cmd_noop(self, tag: str, args: list[object]) -> None:
        if self.mailbox is not None:
            with self.state.lock:
                await self._send(f"* {len(self.mailbox.entries)} EXISTS")
        await self._send(f"{tag} OK NOOP completed")

    async def _cmd_logout(self, tag: str, args: list[object]) -> bool:
        await self._send("* BYE PFI MSSanté simulator logging out")
        await self._send(f"{tag} OK LOGOUT completed")
        return True

    async def _cmd_starttls(self, tag: str, args: list[object]) -> None:
        if self.tls_context is None or self.tls:
            await self._send(f"{tag} BAD STARTTLS not available")
            return
        await self._send(f"{tag} OK Begin TLS negotiation now")
        await self.writer.start_tls(self.tls_context)
        self.tls = True

    # -- not authenticated ----------------------------------------------------------------

    async def _cmd_login(self, tag: str, args: list[object]) -> None:
        if len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise _Bad("LOGIN needs a user name and a password")
        user, password = str(args[0]).lower(), str(args[1])
        with self.state.lock:
            box = self.state.mailboxes.get(user)
        if box is None or box.password != password:
            await self._send(f"{tag} NO [AUTHENTICATIONFAILED] invalid credentials")
            return
        self.user = user
        await self._send(f"{tag} OK [CAPABILITY {self._capabilities()}] LOGIN completed")

    async def _cmd_select(self, tag: str, args: list[object], read_only: bool = False) -> None:
        if len(args) != 1 or str(args[0]).upper() != "INBOX":
            self.mailbox = None
            await self._send(f"{tag} NO [NONEXISTENT] only INBOX exists here")
            return
        with self.state.lock:
            box = self.state.mailboxes[self.user]
            entries = list(box.entries)
            first_unseen = next(
                (i for i, e in enumerate(entries, 1) if "\\Seen" not in e.flags), None
            )
        self.mailbox, self.read_only = box, read_only
        await self._send(f"* FLAGS ({_SYSTEM_FLAGS})")
        await self._send(f"* OK [PERMANENTFLAGS ({_SYSTEM_FLAGS})] flags permitted")
        await self._send(f"* {len(entries)} EXISTS")
        await self._send("* 0 RECENT")
        if first_unseen is not None:
            await self._send(f"* OK [UNSEEN {first_unseen}] first unseen")
        await self._send(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
        await self._send(f"* OK [UIDNEXT {box.next_uid}] predicted next UID")
        mode = "READ-ONLY" if read_only else "READ-WRITE"
        await self._send(f"{tag} OK [{mode}] SELECT completed")

    async def _cmd_examine(self, tag: str, args: list[object]) -> None:
        await self._cmd_select(tag, args, read_only=True)

    # -- selected -------------------------------------------------------------------------

    def _targets(self, spec: object, by_uid: bool) -> list[tuple[int, ImapEntry]]:
        assert self.mailbox is not None
        entries = self.mailbox.entries
        if by_uid:
            uids = [e.uid for e in entries]
            wanted = set(_sequence(str(spec), uids)) if uids else set()
            return [(i, e) for i, e in enumerate(entries, 1) if e.uid in wanted]
        seqs = _sequence(str(spec), list(range(1, len(entries) + 1)))
        return [(i, entries[i - 1]) for i in seqs]

    async def _cmd_search(self, tag: str, args: list[object], by_uid: bool) -> None:
        keys = [str(a).upper() for a in args if not isinstance(a, list)]
        if keys[:1] == ["CHARSET"]:
            keys = keys[2:]
        if not keys or any(
            k not in ("ALL", "UNSEEN", "SEEN", "DELETED", "UNDELETED") for k in keys
        ):
            raise _Bad(f"search keys supported: ALL UNSEEN SEEN DELETED UNDELETED (got {keys})")
        assert self.mailbox is not None
        with self.state.lock:
            found = []
            for i, entry in enumerate(self.mailbox.entries, 1):
                ok = all(
                    k == "ALL"
                    or (k == "UNSEEN" and "\\Seen" not in entry.flags)
                    or (k == "SEEN" and "\\Seen" in entry.flags)
                    or (k == "DELETED" and "\\Deleted" in entry.flags)
                    or (k == "UNDELETED" and "\\Deleted" not in entry.flags)
                    for k in keys
                )
                if ok:
                    found.append(entry.uid if by_uid else i)
        await self._send("* SEARCH" + "".join(f" {n}" for n in found))
        await self._send(f"{tag} OK SEARCH completed")

    async def _cmd_fetch(self, tag: str, args: list[object], by_uid: bool) -> None:
        if len(args) != 2:
            raise _Bad("FETCH needs a sequence set and data items")
        items = args[1] if isinstance(args[1], list) else [args[1]]
        names = [str(i).upper() for i in _flatten(items)]
        if "ALL" in names or "FAST" in names or "FULL" in names:
            names = ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
        allowed = {
            "UID",
            "FLAGS",
            "RFC822",
            "RFC822.SIZE",
            "RFC822.HEADER",
            "BODY[]",
            "BODY.PEEK[]",
            "INTERNALDATE",
            "BODY.PEEK[HEADER]",
            "BODY[HEADER]",
        }
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise _Bad(f"FETCH items not supported: {' '.join(unknown)}")
        if by_uid and "UID" not in names:
            names.insert(0, "UID")
        with self.state.lock:
            targets = self._targets(args[0], by_uid)
            responses = []
            for seq, entry in targets:
                sets_seen = any(n in ("RFC822", "BODY[]", "BODY[HEADER]") for n in names)
                if sets_seen and not self.read_only and "\\Seen" not in entry.flags:
                    entry.flags.add("\\Seen")
                    if "FLAGS" not in names:
                        names = [*names, "FLAGS"]
                responses.append(_fetch_response(seq, entry, names))
        for data in responses:
            self.writer.write(data)
        await self.writer.drain()
        await self._send(f"{tag} OK FETCH completed")

    async def _cmd_store(self, tag: str, args: list[object], by_uid: bool) -> None:
        if len(args) != 3:
            raise _Bad("STORE needs a sequence set, an item and flags")
        if self.read_only:
            await self._send(f"{tag} NO mailbox is read-only (EXAMINE)")
            return
        item = str(args[1]).upper()
        silent = item.endswith(".SILENT")
        item = item.removesuffix(".SILENT")
        if item not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise _Bad(f"STORE item {item} not supported")
        flags = args[2] if isinstance(args[2], list) else [args[2]]
        wanted = {str(f) for f in flags}
        bad = [f for f in wanted if f not in _SYSTEM_FLAGS.split()]
        if bad:
            raise _Bad(f"flags not permitted: {' '.join(bad)}")
        lines = []
        with self.state.lock:
            for seq, entry in self._targets(args[0], by_uid):
                if item == "FLAGS":
                    entry.flags = set(wanted)
                elif item == "+FLAGS":
                    entry.flags |= wanted
                else:
                    entry.flags -= wanted
                if not silent:
                    uid = f"UID {entry.uid} " if by_uid else ""
                    lines.append(f"* {seq} FETCH ({uid}FLAGS ({' '.join(sorted(entry.flags))}))")
        for line in lines:
            await self._send(line)
        await self._send(f"{tag} OK STORE completed")

    async def _cmd_check(self, tag: str, args: list[object]) -> None:
        await self._send(f"{tag} OK CHECK completed")

    async def _cmd_expunge(self, tag: str, args: list[object], announce: bool = True) -> None:
        assert self.mailbox is not None
        removed = []
        with self.state.lock:
            entries = self.mailbox.entries
            for i in range(len(entries), 0, -1):
                if "\\Deleted" in entries[i - 1].flags:
                    del entries[i - 1]
                    removed.append(i)
        if announce:
            for i in removed:
                await self._send(f"* {i} EXPUNGE")
            await self._send(f"{tag} OK EXPUNGE completed")

    async def _cmd_close(self, tag: str, args: list[object]) -> None:
        if not self.read_only:
            await self._cmd_expunge(tag, args, announce=False)
        self.mailbox = None
        await self._send(f"{tag} OK CLOSE completed")


def _flatten(items: Iterable[object]) -> list[object]:
    out: list[object] = []
    for item in items:
        if isinstance(item, list):
            # BODY.PEEK[...] may be split by the tokenizer only on spaces, never here
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _fetch_response(seq: int, entry: ImapEntry, names: list[str]) -> bytes:
    parts: list[bytes] = []
    header_end = entry.raw.find(b"\r\n\r\n")
    header = entry.raw[: header_end + 4] if header_end >= 0 else entry.raw
    for name in names:
        if name == "UID":
            parts.append(f"UID {entry.uid}".encode())
        elif name == "FLAGS":
            parts.append(f"FLAGS ({' '.join(sorted(entry.flags))})".encode())
        elif name == "RFC822.SIZE":
            parts.append(f"RFC822.SIZE {len(entry.raw)}".encode())
        elif name == "INTERNALDATE":
            stamp = entry.internal_date.strftime("%d-%b-%Y %H:%M:%S +0000")
            parts.append(f'INTERNALDATE "{stamp}"'.encode())
        elif name in ("RFC822", "BODY[]", "BODY.PEEK[]"):
            label = "RFC822" if name == "RFC822" else "BODY[]"
            parts.append(f"{label} {{{len(entry.raw)}}}\r\n".encode() + entry.raw)
        elif name in ("RFC822.HEADER", "BODY[HEADER]", "BODY.PEEK[HEADER]"):
            label = "RFC822.HEADER" if name == "RFC822.HEADER" else "BODY[HEADER]"
            parts.append(f"{label} {{{len(header)}}}\r\n".encode() + header)
    return f"* {seq} FETCH (".encode() + b" ".join(parts) + b")\r\n"


async def serve_imap(
    state: SimulatorState,
    host: str,
    port: int,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
) -> asyncio.AbstractServer:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ImapSession(reader, writer, state, tls_context, implicit_tls).run()

    return await asyncio.start_server(
        on_client, host, port, ssl=tls_context if implicit_tls else None, limit=_MAX_LINE * 2
    )
