"""The first line: at most 160 characters, the reply code always kept.

An SMS carries 160 characters of the GSM alphabet, which has no "...": a line that is too
long is shortened piece by piece (the longest first, or the least needed dropped), never
losing the codes a reader searches for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from check_mailgw.outcome import Diagnosis

# An SMS carries 160 characters of the GSM alphabet, which has no "…": three dots it is.
FIRST_LINE_LIMIT = 160
ELLIPSIS = "..."
PREFIX = "MAILGW"
# What a shortened line never loses: SMTP's basic and enhanced status ("535 5.7.139"), an
# HTTP status with Graph's error code ("403 ErrorAccessDenied"), Entra ID's AADSTS number,
# a DNS answer's code, and how long the server asks to wait.
_CODE = (r"(?:HTTP )?[1-5]\d\d\b(?:[ ;,]+[245]\.\d{1,3}\.\d{1,3}\b)?"
         r"(?: [A-Z][a-z]+[A-Z_]\w*)?|AADSTS\d+\b|retry after \d+s"
         r"|(?:NXDOMAIN|SERVFAIL|REFUSED|NOERROR|FORMERR|NOTIMP)\b")
# A run of codes at the start of a reply ("HTTP 503, retry after 20s: AADSTS90033"), or
# inside the parenthesis of a brief ("accepted (250 2.0.0 Ok: queued as ...)").
# Patterns, not compiled: only a line that is too long needs them (re caches them then).
_LEADING_CODES = rf"(?:^|\()(?:{_CODE})(?:[:;,]? (?:{_CODE}))*"
# A closing clause that is kept whole: a code, a hint, or just the parenthesis itself.
_CLOSING_CLAUSE = (r" ?\((?:retry after \d+s|OpenSSL verify code \d+|"
                   r"[A-Z][A-Z0-9_]{3,}|run with -vvv[^()]*)\)$|\)$")
_PORT = r":\d+$"
# Briefs an OK line can do without when it is too long; the long output has them.
EXPENDABLE_BRIEFS = ("token", "tls", "tunnel", "resolve", "connect", "greeting")


def line_budget(state: str) -> int:
    """Characters left for the summary after "MAILGW <STATE> - "."""
    return FIRST_LINE_LIMIT - len(f"{PREFIX} {state.upper()} - ")


class Piece:
    """Part of the first line that may be shortened, never into its protected head and tail."""

    __slots__ = ("dropped", "head", "keep", "middle", "tail", "text")

    def __init__(self, text: str, head: int = 0, tail: int = 0, middle: bool = False) -> None:
        self.text = text
        self.head = head  # leading characters never cut (a reply code)
        self.tail = tail  # trailing characters never cut (a closing clause, a port)
        self.middle = middle  # cut in the middle: a host name keeps its domain and port
        self.keep: int | None = None  # characters of the cuttable body kept, once cut
        self.dropped = False

    @classmethod
    def protecting_codes(cls, text: str) -> Piece:
        codes = re.search(_LEADING_CODES, text)
        closing = re.search(_CLOSING_CLAUSE, text)
        head = codes.end() if codes else 0
        tail = len(closing.group()) if closing and closing.start() >= head else 0
        return cls(text, head, tail)

    @classmethod
    def host(cls, target: str) -> Piece:
        port = re.search(_PORT, target)
        return cls(target, tail=len(port.group()) if port else 0, middle=True)

    @property
    def body(self) -> str:
        return self.text[self.head:len(self.text) - self.tail]

    def kept(self) -> int:
        return len(self.body) if self.keep is None else self.keep

    def can_shrink(self, floor: int) -> bool:
        # The first cut adds the ellipsis, so it must take more than that to gain anything.
        after = self.kept() - (len(ELLIPSIS) + 1 if self.keep is None else 1)
        return not self.dropped and after >= max(floor, 0)

    def shrink(self) -> None:
        self.keep = self.kept() - (len(ELLIPSIS) + 1 if self.keep is None else 1)

    def __str__(self) -> str:
        if self.dropped:
            return ""
        if self.keep is None:
            return self.text
        head, body, tail = self.text[:self.head], self.body, self.text[len(self.text) - self.tail:]
        if self.middle:
            front = (self.keep + 1) // 2
            back = body[len(body) - (self.keep - front):] if self.keep > front else ""
            return f"{head}{body[:front]}{ELLIPSIS}{back}{tail}"
        if self.keep == 0 and head.strip():
            return head.rstrip(" ,;:") + tail  # a code alone says what it says
        return f"{cut_at_word(head, body, self.keep)}{ELLIPSIS}{tail}"

Shortening = Callable[[], bool]


def cut_at_word(head: str, body: str, keep: int) -> str:
    """The head and the first `keep` characters of the body, ending on a word if one is near."""
    part = body[:keep]
    space = part.rfind(" ")
    if keep < len(body) and space > 0 and space >= keep - 12:
        part = part[:space]
    return head + part.rstrip(" ,;:.(")


def shorten(compose: Callable[[], str], limit: int, shortenings: Iterable[Shortening]) -> str:
    """Applies each shortening, in order, until the composed line fits (or none is left)."""
    for shortening in shortenings:
        while len(compose()) > limit and shortening():
            pass
    return compose()


def fit(compose: Callable[[], str], limit: int, shortenings: Iterable[Shortening]) -> str:
    """The composed line shortened to fit; cut hard at its end if the shortenings fall short."""
    line = shorten(compose, limit, shortenings)
    return line if len(line) <= limit else line[:limit - len(ELLIPSIS)] + ELLIPSIS


def level(pieces: Sequence[Piece], floor: int) -> Shortening:
    """Shortens the longest of the pieces by one, down to `floor` characters of body each."""
    def shorten_longest() -> bool:
        candidates = [piece for piece in pieces if piece.can_shrink(floor)]
        if not candidates:
            return False
        max(candidates, key=lambda piece: len(str(piece))).shrink()
        return True
    return shorten_longest


def drop(pieces: Sequence[Piece]) -> Shortening:
    """Leaves out one more of the pieces, in their order."""
    queue = list(pieces)

    def drop_next() -> bool:
        while queue:
            piece = queue.pop(0)
            if not piece.dropped:
                piece.dropped = True
                return True
        return False
    return drop_next


def fit_problem(step: str, target: str, concern: Diagnosis, limit: int) -> str:
    """"<step> on <host>: <problem>: <reply>": the server's words go first (its code stays),
    then ours, then the host's middle."""
    whole = f"{step} on {target}: " + (f"{concern.problem}: {concern.reply}" if concern.reply
                                       else concern.problem)
    if len(whole) <= limit:
        return whole
    host = Piece.host(target)
    problem = Piece.protecting_codes(concern.problem)
    reply = Piece.protecting_codes(concern.reply) if concern.reply else None
    replies = [reply] if reply else []

    def compose() -> str:
        words = f"{problem}: {reply}" if reply else str(problem)
        return f"{step} on {host}: {words}"
    return fit(compose, limit, [level(replies, 0), level([problem], 40), level([host], 40),
                                level([problem], 16), level([host], 20)])


def fit_ok(mode: str, target: str, briefs: Sequence[tuple[str, str]], took: str,
           limit: int) -> str:
    """"<mode> <host>: <brief>, <brief>, ... in <time>": the briefs that matter least go
    first, then replies quoted in briefs shrink, then a long host's middle, then all."""
    whole = f"{mode} {target}: {', '.join(brief for _, brief in briefs)} {took}"
    if len(whole) <= limit:
        return whole
    host = Piece.host(target)
    by_step = {step: Piece.protecting_codes(brief) for step, brief in briefs}
    pieces = list(by_step.values())
    quoting = [piece for piece in pieces if piece.head]
    expendable = [by_step[step] for step in EXPENDABLE_BRIEFS if step in by_step]

    def compose() -> str:
        shown = ", ".join(str(piece) for piece in pieces if not piece.dropped)
        return f"{mode} {host}: {shown} {took}"
    return fit(compose, limit, [drop(expendable), level(quoting, 16), level([host], 40),
                                level(pieces, 12), level([host], 20), level(pieces, 0)])

_LONG_WORD = r"(\S{41,})"


def fit_text(text: str, limit: int) -> str:
    """Any other line: long words (file paths) lose their middle first, then the text its
    end, keeping a closing code or hint."""
    parts = [Piece(part, middle=bool(index % 2))
             for index, part in enumerate(re.split(_LONG_WORD, text))]
    shorten(lambda: "".join(map(str, parts)), limit, [level(parts[1::2], 24)])
    piece = Piece.protecting_codes("".join(map(str, parts)))
    return fit(lambda: str(piece), limit, [level([piece], 0)])
