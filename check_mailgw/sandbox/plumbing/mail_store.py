"""The sandbox's mailboxes: where accepted messages are delivered, for reading them back.

One store serves every service: the SMTP listeners and Graph's sendMail deliver into
it (after the scenario's delay, into the folder it names), Graph's messages endpoints
and the IMAP server read and delete from it. Services run in threads of their own:
every method takes the store's lock, and watchers (IMAP IDLE) hear of each delivery
and deletion in the thread of the change; they hand it to their own loop themselves.
"""

import base64
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Literal

# IMAP's names; Graph's well-known names are inbox and junkemail.
Folder = Literal["INBOX", "Junk"]
FOLDERS: tuple[Folder, ...] = ("INBOX", "Junk")
# Enough for every test; a sender that loops is not stored past it.
MAX_MESSAGES_PER_MAILBOX = 1_000

Watcher = Callable[[str, Folder], None]


@dataclass
class StoredMessage:
    """One delivered message, as a mailbox holds it."""

    mailbox: str
    folder: Folder
    raw: bytes
    # IMAP's UID, unique within the folder; Graph's opaque id (it may hold / + =).
    uid: int
    graph_id: str
    received: float = field(default_factory=time.time)
    flags: set[str] = field(default_factory=set)

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        """The Message-ID header, angle brackets kept (as Graph's internetMessageId)."""
        return str(self.message.get("Message-ID", "")).strip()


class MailStore:
    """Mailboxes by address (lower case), each with the folders INBOX and Junk."""

    def __init__(self, mailboxes: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, list[StoredMessage]] = {
            address.lower(): [] for address in mailboxes
        }
        self._next_uid: dict[tuple[str, Folder], int] = {}
        self._watchers: list[Watcher] = []
        self._timers: list[threading.Timer] = []

    def knows(self, mailbox: str) -> bool:
        return mailbox.lower() in self._messages

    def deliver(
        self, mailbox: str, raw: bytes, *, folder: Folder = "INBOX", delay: float = 0.0
    ) -> None:
        """Put a message into a mailbox's folder now, or after delay seconds; a mailbox
        the store does not know is passed by (its mail goes elsewhere)."""
        if not self.knows(mailbox):
            return
        if delay <= 0:
            self._store(mailbox.lower(), raw, folder)
            return
        timer = threading.Timer(delay, self._store, (mailbox.lower(), raw, folder))
        timer.daemon = True
        with self._lock:
            self._timers = [pending for pending in self._timers if pending.is_alive()]
            self._timers.append(timer)
        timer.start()

    def messages(self, mailbox: str, folder: Folder | None = None) -> list[StoredMessage]:
        """A mailbox's messages, oldest first: one folder's, or all."""
        with self._lock:
            held = list(self._messages.get(mailbox.lower(), ()))
        return [message for message in held if folder is None or message.folder == folder]

    def delete(self, mailbox: str, message: StoredMessage) -> bool:
        """Remove a message; False if it was not there (any more)."""
        with self._lock:
            held = self._messages.get(mailbox.lower(), [])
            if message not in held:
                return False
            held.remove(message)
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(message.mailbox, message.folder)
        return True

    def watch(self, watcher: Watcher) -> Callable[[], None]:
        """Call watcher(mailbox, folder) after every change; returns what stops it."""
        with self._lock:
            self._watchers.append(watcher)

        def stop() -> None:
            with self._lock:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

        return stop

    def clear(self) -> None:
        """Empty every mailbox and cancel deliveries still on their way."""
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            for held in self._messages.values():
                held.clear()

    def _store(self, mailbox: str, raw: bytes, folder: Folder) -> None:
        with self._lock:
            held = self._messages[mailbox]
            if len(held) >= MAX_MESSAGES_PER_MAILBOX:
                return
            uid = self._next_uid.get((mailbox, folder), 1)
            self._next_uid[(mailbox, folder)] = uid + 1
            # Shaped like Exchange's ids: base64 of opaque bytes, with / + = in it.
            graph_id = base64.b64encode(b"\x00\x00\x00" + secrets.token_bytes(45)).decode()
            held.append(StoredMessage(mailbox, folder, raw, uid, graph_id))
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher(mailbox, folder)
