"""Secrets: a wrapper that never prints its value, and a filter that masks leaks."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TextIO
from urllib.parse import unquote, urlsplit

MASK = "****"


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


def leak_forms(secret: str) -> set[str]:
    """The secret as it could appear in text: plain, and base64 as in SASL exchanges."""
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    return {form for form in forms if len(form) >= 3}


class Redactor:
    """Last line of defence: masks every known secret in text about to leave the process."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, text: str) -> None:
        self._forms = sorted(set(self._forms) | leak_forms(text), key=len, reverse=True)

    def add_url_credentials(self, url: str) -> None:
        """Masks the password of a URL such as http://user:password@proxy:3128."""
        password = urlsplit(url).password
        if password:
            self.add(password)
            self.add(unquote(password))

    def __call__(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, MASK)
        return text


class RedactingStream:
    """A text stream that passes everything it is given through a Redactor."""

    def __init__(self, stream: TextIO, redact: Redactor) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        return self._stream.write(self._redact(text))

    def flush(self) -> None:
        self._stream.flush()
