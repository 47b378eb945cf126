"""Secrets: a wrapper that never prints its value, a filter that masks leaks, and the
bounded, never-hanging reads of the files that hold them."""

from __future__ import annotations

import base64
import json
import math
import os
import select
import stat
import time
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import quote, quote_plus, unquote, urlsplit

from check_mailgw.errors import SettingsError

MASK = "****"
SECRET_FILE_LIMIT = 64 * 1024  # a password, client secret or passphrase is one short line
PIPE_WAIT = 10.0  # seconds a pipe's writer gets when the caller knows no -t


class Secret:
    """Domain model: a password or client secret; str() and repr() never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


RUN = 12  # a run this long of a secret's characters is masked wherever it appears


def leak_forms(secret: str) -> set[str]:
    """The secret as it could appear in text: plain, URL-encoded (form bodies), JSON-escaped
    (error bodies that echo a request), and base64 (SASL exchanges), in each of the three
    alignments base64 can give it inside a longer text."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    data = secret.encode()
    forms.add(base64.b64encode(data).decode())
    for shift in range(3):
        part = data[shift:]
        usable = len(part) - len(part) % 3  # a partial last group depends on what follows
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(part[:usable]).decode())
    return {form for form in forms if len(form) >= 3}


class Redactor:
    """Last line of defence: masks every known secret in text about to leave the process.

    Each secret is masked in every form of leak_forms, and so is any run of RUN or more of a
    form's characters: a server that echoes a truncated secret gives away no part of it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._runs: set[str] | None = None  # built when first needed: most runs mask nothing
        for secret in secrets:
            self.add(secret)

    def add(self, text: str) -> None:
        if text:
            self._forms |= leak_forms(text)
            self._runs = None

    def add_url_credentials(self, url: str) -> None:
        """Masks the password of a URL such as http://user:password@proxy:3128."""
        password = urlsplit(url).password
        if password:
            self.add(password)
            self.add(unquote(password))

    def runs(self) -> set[str]:
        if self._runs is None:
            self._runs = {form[i:i + RUN] for form in self._forms if len(form) >= RUN
                          for i in range(len(form) - RUN + 1)}
        return self._runs

    def __call__(self, text: str) -> str:
        if not self._forms or not text:
            return text
        masked = bytearray(len(text))  # 1 where a character belongs to a secret
        for form in self._forms:
            if len(form) < RUN:
                start = text.find(form)
                while start >= 0:
                    masked[start:start + len(form)] = b"\x01" * len(form)
                    start = text.find(form, start + 1)
        runs = self.runs()
        for start in range(len(text) - RUN + 1):
            if text[start:start + RUN] in runs:
                masked[start:start + RUN] = b"\x01" * RUN
        if not any(masked):
            return text
        pieces: list[str] = []
        for index, character in enumerate(text):
            if not masked[index]:
                pieces.append(character)
            elif index == 0 or not masked[index - 1]:
                pieces.append(MASK)
        return "".join(pieces)


class RedactingStream:
    """A text stream that passes everything it is given through a Redactor."""

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        return self._stream.write(self._redact(text))

    def flush(self) -> None:
        self._stream.flush()


def read_bounded(path: str, option: str, limit: int, too_large: str,
                 wait: float = PIPE_WAIT) -> bytes:
    """The file's bytes, at most `limit` of them; a larger file is refused at once.

    Opened non-blocking: a FIFO or a pipe such as bash's <(...) is read until its writer
    finishes, but for at most `wait` seconds; a device is refused (it may never end).
    """
    descriptor = open_to_read(path, option)
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise SettingsError(f"{option} {path}: cannot read: Is a directory")
        if stat.S_ISREG(status.st_mode):
            if status.st_size > limit:
                raise SettingsError(f"{option} {path}: larger than {limit // 1024} KiB: "
                                    f"{too_large}")
            data = read_regular(descriptor, limit)
        elif stat.S_ISFIFO(status.st_mode):
            data = read_pipe(descriptor, limit, wait, f"{option} {path}")
        else:
            raise SettingsError(f"{option} {path}: a device or socket, not a file")
    except OSError as error:
        raise SettingsError(f"{option} {path}: cannot read: {error.strerror}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:  # a file that grew, or a pipe: the size was not known up front
        raise SettingsError(f"{option} {path}: larger than {limit // 1024} KiB: {too_large}")
    return data


def open_to_read(path: str, option: str) -> int:
    """A descriptor of the file, never blocking (a FIFO), or a SettingsError saying why not."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise SettingsError(f"{option} {path}: cannot read: {error.strerror}") from None


def check_readable_file(path: str, option: str) -> None:
    """A regular file this process may read, for a library that reads it later (the TLS
    context's CA file), or a SettingsError with the system's reason."""
    descriptor = open_to_read(path, option)
    try:
        mode = os.fstat(descriptor).st_mode
    finally:
        os.close(descriptor)
    if stat.S_ISDIR(mode):
        raise SettingsError(f"{option} {path}: cannot read: Is a directory")
    if not stat.S_ISREG(mode):  # a pipe or device could hang the library reading it
        raise SettingsError(f"{option} {path}: a pipe, device or socket, not a file")


def read_regular(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(descriptor, limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def read_pipe(descriptor: int, limit: int, wait: float, what: str) -> bytes:
    """Reads a pipe until end of file, `limit` bytes past, or `wait` seconds gone."""
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    end = time.monotonic() + wait
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        left = end - time.monotonic()
        if left <= 0:
            raise SettingsError(f"{what}: a pipe whose writer did not finish within "
                                f"{wait:g}s (-t)")
        if not poller.poll(math.ceil(left * 1000)):
            continue
        try:
            chunk = os.read(descriptor, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def loose_permissions(path: str, what: str) -> str | None:
    """ssh-style advice when a file holding a secret is readable by its group or others."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode):  # a pipe from <(...) belongs to this run alone
        return None
    mode = stat.S_IMODE(status.st_mode)
    if mode & stat.S_IROTH:
        readers = "others"
    elif mode & stat.S_IRGRP:
        readers = "its group"
    else:
        return None
    return (f"{what} is readable by {readers} (mode {mode:04o}): chmod 600 it, owned by the "
            "monitoring user")
