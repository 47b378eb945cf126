"""Tenant discovery answers kept between runs: one round trip to the sign-in host less per check.

Before each token request msal asks the sign-in host for the tenant's OpenID configuration
(GET {authority}/{tenant}/v2.0/.well-known/openid-configuration, OpenID Connect Discovery 1.0
section 4). The answer holds no secret and changes rarely, so it is kept for a day (as long as
msal keeps it in memory) in a file per authority and tenant, in the user's cache directory
($XDG_CACHE_HOME/check_mailgw, else ~/.cache/check_mailgw) or the one --discovery-cache
names; --discovery-cache "" keeps nothing.

Only that answer is kept: never a token, a token endpoint's answer, an error answer or
msal's throttling state (so msal's own http_cache, which holds all of these as pickled
objects, is not used). A kept answer is plain JSON, read back only for the exact discovery URL
and the trust (--ca-file) it was fetched with, and checked as a live answer is before msal
sees it. A cache that cannot be used is passed by: the check asks the sign-in host, and -v
says why in one line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from check_mailgw.net.http_status import HTTP_200_OK
from check_mailgw.net.https import DeadlineHttpClient, UntrustedAnswer, printable_url

MAX_AGE = 24 * 3600  # seconds; msal's in-memory cache keeps a discovery answer as long
CLOCK_SKEW = 300  # an entry dated this far ahead of the clock is still believed
# A discovery document is about 2 KiB (login.microsoftonline.com's); a file past this is not.
FILE_LIMIT = 64 * 1024
FORMAT = 1
DIRECTORY_NAME = "check_mailgw"
PREFIX, SUFFIX = "discovery-", ".json"
SWEEP_LIMIT = 256  # directory entries looked at for old files on each write
PRIVATE = 0o077  # group and other bits: the directory is 0700, its files 0600


class Unusable(Exception):
    """Why the cache, or one entry of it, is passed by: a line for the -v output."""


def discovery_url(authority: str, tenant: str) -> str:
    """The URL msal asks for tenant discovery of an Entra ID authority."""
    return f"{authority}/{tenant}/v2.0/.well-known/openid-configuration"


def cache_directory(env: Mapping[str, str], chosen: str | None = None) -> Path | None:
    """--discovery-cache DIR when given, else $XDG_CACHE_HOME/check_mailgw, else
    ~/.cache/check_mailgw (XDG Base Directory Specification: a relative $XDG_CACHE_HOME is
    ignored); None without a home directory."""
    if chosen:
        return Path(chosen)
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base, DIRECTORY_NAME)


def trust_of(ca_file: str | None) -> str:
    """What the TLS connection that fetched an answer trusted: an answer is reused only
    under the same trust anchors (the system's, or one --ca-file's content)."""
    if not ca_file:
        return "system"
    with open(ca_file, "rb") as file:
        return "ca-file sha256:" + hashlib.sha256(file.read()).hexdigest()


def age_words(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}min" if minutes >= 60 else f"{minutes}min"


class DiscoveryCache:
    """Domain model: the kept discovery answer of one authority and tenant, under one trust.

    Its notes say why it was passed by; every problem is one, never an exception.
    """

    def __init__(self, directory: Path | None, url: str, trust: str) -> None:
        self.directory = directory
        self.url = url
        self.trust = trust
        digest = hashlib.sha256(f"{url}\n{trust}".encode()).hexdigest()[:40]
        self.name = f"{PREFIX}{digest}{SUFFIX}"
        self.notes: list[str] = []

    @property
    def path(self) -> str:
        return str(Path(self.directory or "?", self.name))

    def note(self, words: str) -> None:
        if words not in self.notes:
            self.notes.append(words)

    def load(self, now: float | None = None) -> tuple[dict[str, Any], float] | None:
        """The kept document and its age in seconds, if there is a usable one."""
        try:
            directory = self._open_directory(create=False)
        except FileNotFoundError:
            return None
        except Unusable as reason:
            self.note(f"not used: {reason}")
            return None
        try:
            entry = self._read(directory)
        except FileNotFoundError:
            return None
        except Unusable as reason:
            self.note(f"entry {self.path} not used: {reason}")
            return None
        finally:
            os.close(directory)
        return self._validated(entry, time.time() if now is None else now)

    def store(self, body: bytes, now: float | None = None) -> bool:
        """Keeps a live discovery answer (a JSON object), written whole or not at all."""
        try:
            document = json.loads(body)
        except ValueError:
            return False
        if not isinstance(document, dict):
            return False
        entry = json.dumps({"format": FORMAT, "url": self.url, "trust": self.trust,
                            "fetched": time.time() if now is None else now,
                            "document": document}).encode()
        if len(entry) > FILE_LIMIT:
            self.note(f"not kept: the answer is over {FILE_LIMIT // 1024} KiB")
            return False
        try:
            directory = self._open_directory(create=True)
        except Unusable as reason:
            if f"not used: {reason}" not in self.notes:  # said once is enough
                self.note(f"not kept: {reason}")
            return False
        try:
            self._write(directory, entry)
            self._sweep(directory, time.time() if now is None else now)
        except OSError as error:
            self.note(f"not kept in {self.directory}: {error.strerror or error}")
            return False
        finally:
            os.close(directory)
        return True

    def forget(self) -> None:
        """Drops the entry, so that the next run asks again (the token request after a
        kept answer failed: the answer may be stale)."""
        try:
            directory = self._open_directory(create=False)
        except (FileNotFoundError, Unusable):
            return
        try:
            os.unlink(self.name, dir_fd=directory)
        except OSError:
            pass  # gone already, or not ours to remove: it is checked on every read anyway
        finally:
            os.close(directory)

    # --- the files -----------------------------------------------------------------------------

    def _open_directory(self, *, create: bool) -> int:
        """A descriptor of the cache directory, checked to be ours alone; every later call
        goes through it, so a directory swapped after the check is never used."""
        if self.directory is None:
            raise Unusable("no home directory to keep a cache in")
        if create:
            self._make_directory()
        try:
            descriptor = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                kind = "a symbolic link" if os.path.islink(self.directory) else "not a directory"
                raise Unusable(f"{self.directory} is {kind}") from None
            raise Unusable(f"{self.directory}: {error.strerror}") from None
        try:
            self._check_owner(os.fstat(descriptor), str(self.directory), 0o700)
        except Unusable:
            os.close(descriptor)
            raise
        return descriptor

    def _make_directory(self) -> None:
        assert self.directory is not None
        parent = self.directory.parent
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)  # 0700 when made, as XDG asks
        except FileExistsError:
            raise Unusable(f"{parent} is not a directory") from None
        except OSError as error:
            raise Unusable(f"cannot create {error.filename or parent} ({error.strerror})") \
                from None
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass  # checked when opened
        except OSError as error:
            raise Unusable(f"cannot create {self.directory} ({error.strerror})") from None

    @staticmethod
    def _check_owner(status: os.stat_result, what: str, mode: int) -> None:
        if status.st_uid != os.geteuid():
            raise Unusable(f"{what} belongs to uid {status.st_uid}, not to this user")
        if stat.S_IMODE(status.st_mode) & PRIVATE:
            raise Unusable(f"{what} has mode {stat.S_IMODE(status.st_mode):04o}, "
                           f"not {mode:04o}")

    def _read(self, directory: int) -> bytes:
        try:
            # O_NONBLOCK: a FIFO put in the entry's place cannot hold the run.
            descriptor = os.open(self.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                                 dir_fd=directory)
        except FileNotFoundError:
            raise
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise Unusable("it is a symbolic link") from None
            raise Unusable(error.strerror or str(error)) from None
        try:
            status = os.fstat(descriptor)
            if not stat.S_ISREG(status.st_mode):
                raise Unusable("not a regular file")
            self._check_owner(status, "it", 0o600)
            if status.st_size > FILE_LIMIT:
                raise Unusable(f"over {FILE_LIMIT // 1024} KiB")
            data = b""
            while chunk := os.read(descriptor, FILE_LIMIT + 1 - len(data)):
                data += chunk
                if len(data) > FILE_LIMIT:
                    break
        except OSError as error:
            raise Unusable(error.strerror or str(error)) from None
        finally:
            os.close(descriptor)
        if len(data) > FILE_LIMIT:
            raise Unusable(f"over {FILE_LIMIT // 1024} KiB")
        return data

    def _validated(self, data: bytes, now: float) -> tuple[dict[str, Any], float] | None:
        def refuse(reason: str) -> None:
            self.note(f"entry {self.path} not used: {reason}")

        try:
            entry = json.loads(data)
        except (ValueError, RecursionError):
            return refuse("not JSON")
        if not isinstance(entry, dict) or entry.get("format") != FORMAT:
            return refuse("not a discovery cache entry")
        if entry.get("url") != self.url or entry.get("trust") != self.trust:
            return refuse("kept for another authority, tenant or --ca-file")
        fetched, document = entry.get("fetched"), entry.get("document")
        if not isinstance(fetched, int | float) or isinstance(fetched, bool) or \
                not isinstance(document, dict):
            return refuse("not a discovery cache entry")
        age = now - fetched
        if age > MAX_AGE:
            return refuse(f"older than {MAX_AGE // 3600} hours ({age_words(age)})")
        if age < -CLOCK_SKEW:
            return refuse("dated in the future")
        return document, max(0.0, age)

    def _write(self, directory: int, entry: bytes) -> None:
        """A temporary file beside the entry, renamed over it: a reader, or a run beside
        this one, sees the old entry or the new one, never part of one."""
        temporary = f".{self.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600, dir_fd=directory)
        try:
            written = 0
            while written < len(entry):
                written += os.write(descriptor, entry[written:])
            # No fsync: a torn entry after a crash is refused on read, and costs one request.
            os.replace(temporary, self.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        finally:
            os.close(descriptor)

    @staticmethod
    def _sweep(directory: int, now: float) -> None:
        """Removes entries and leftover temporary files past their age: every authority a
        user ever checked would otherwise leave one behind."""
        with os.scandir(directory) as entries:
            for count, entry in enumerate(entries):
                if count >= SWEEP_LIMIT:
                    return
                ours = entry.name.startswith((PREFIX, f".{PREFIX}"))
                if not ours or not entry.name.endswith((SUFFIX, ".tmp")):
                    continue
                try:
                    if now - entry.stat(follow_symlinks=False).st_mtime > MAX_AGE:
                        os.unlink(entry.name, dir_fd=directory)
                except OSError:
                    continue


class DiscoveryThroughCache:
    """msal's http_client: the discovery answer from the cache when one is kept, else from
    the sign-in host through `http` (and then kept); every other request goes to `http`."""

    def __init__(self, http: DeadlineHttpClient, cache: DiscoveryCache) -> None:
        self.http = http
        self.cache = cache
        self.from_cache = False  # whether msal got the kept answer in this run
        self.bypass = False  # set after msal could not use the kept answer

    def get(self, url: str, params: Any = None, headers: Any = None,
            **kwargs: Any) -> requests.Response:
        if url != self.cache.url or params:
            return self.http.get(url, params=params, headers=headers, **kwargs)
        if not self.bypass and (kept := self.cached_answer(url)) is not None:
            return kept
        response = self.http.get(url, params=params, headers=headers, **kwargs)
        # The client has checked it (self.http.inspect) before it got here.
        if response.status_code == HTTP_200_OK and self.cache.store(response.content):
            self.http.exchanges.append(f"kept for {MAX_AGE // 3600} hours in {self.cache.path}")
        return response

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kwargs: Any) -> requests.Response:
        return self.http.post(url, params=params, data=data, headers=headers, **kwargs)

    def close(self) -> None:
        self.http.close()

    def cached_answer(self, url: str) -> requests.Response | None:
        """The kept answer as a response, checked as the live one would be."""
        kept = self.cache.load()
        if kept is None:
            return None
        document, age = kept
        response = answer_of(url, json.dumps(document).encode())
        check: Callable[[str, requests.Response], None] | None = self.http.inspect
        try:
            if check is not None:
                check(url, response)
        except UntrustedAnswer as refused:
            self.cache.note(f"entry {self.cache.path} not used: {refused.problem}")
            return None
        self.http.exchanges.append(f"GET {printable_url(url)} -> 200 kept {age_words(age)} "
                                   f"ago in {self.cache.path}")
        self.http.last_response = response
        self.from_cache = True
        return response

    def refused_by_msal(self, error: Exception) -> None:
        """msal could not use the kept answer: the run asks the sign-in host instead."""
        reason = f"{type(error).__name__} {str(error)[:80]}".strip()
        self.cache.note(f"entry {self.cache.path} not used: msal refused it ({reason})")
        self.from_cache, self.bypass = False, True


def answer_of(url: str, body: bytes) -> requests.Response:
    """A 200 answer with this JSON body, as the transport hands msal a live one."""
    response = requests.Response()
    response.status_code = HTTP_200_OK
    response.url = url
    response.encoding = "utf-8"
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json; charset=utf-8",
                                            "Content-Length": str(len(body))})
    response._content = body
    return response
