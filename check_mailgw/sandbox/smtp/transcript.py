"""One SMTP connection as the server saw it, for tests to read: credentials never kept.

Client lines are prefixed "C: ", the server's "S: ". What follows AUTH <mechanism>, and
every answer to a 334 challenge, is kept as "****"; a message's text after DATA is kept
as one line saying its size (the message itself is in the listener's messages).
"""

MASK = "****"
# Enough for any dialogue a test has; a client that talks on is cut short here.
MAX_LINES = 2_000
MAX_LINE_LENGTH = 1_000


class Transcript:
    """The lines of one connection, oldest first, as the sandbox's SMTP engine saw them."""

    def __init__(self, listener: str) -> None:
        self.listener = listener
        self.lines: list[str] = []
        self._pending = b""
        self._answering_challenge = False
        self._in_message = False
        self._message_bytes = 0
        self._binary = False

    def binary_follows(self) -> None:
        """What the client sends from now on is not SMTP (a TLS handshake the server refuses)."""
        self._binary = True
        self._add("C: (TLS handshake, not kept)")

    @property
    def commands(self) -> list[str]:
        """The client's lines only, without the prefix: ["EHLO client", "AUTH PLAIN ****", ...]."""
        return [line[3:] for line in self.lines if line.startswith("C: ")]

    @property
    def replies(self) -> list[str]:
        """The server's lines only, without the prefix."""
        return [line[3:] for line in self.lines if line.startswith("S: ")]

    def client_sent(self, data: bytes) -> None:
        if self._binary:
            return
        self._pending += data
        while b"\n" in self._pending:
            line, _, self._pending = self._pending.partition(b"\n")
            self._client_line(line.rstrip(b"\r").decode("utf-8", errors="replace"))
        # A line without its end, longer than any the engine accepts, is not kept whole.
        self._pending = self._pending[-MAX_LINE_LENGTH * 40 :]

    def server_sent(self, reply: bytes) -> None:
        text = reply.decode("utf-8", errors="replace")
        for line in text.split("\r\n"):
            self._add("S: " + line)
        last = text.rsplit("\r\n", 1)[-1]
        self._answering_challenge = last.startswith("334")
        if last.startswith("354"):
            self._in_message, self._message_bytes = True, 0

    def _client_line(self, line: str) -> None:
        if self._in_message:
            if line == ".":
                self._in_message = False
                self._add(f"C: (message, {self._message_bytes} bytes)")
                self._add("C: .")
            else:
                self._message_bytes += len(line.encode()) + 2
            return
        if self._answering_challenge:
            self._add("C: " + MASK)
            return
        verb, _, rest = line.partition(" ")
        if verb.upper() == "AUTH":
            mechanism, _, credentials = rest.strip().partition(" ")
            line = f"{verb} {mechanism} {MASK}" if credentials.strip() else f"{verb} {mechanism}"
        self._add("C: " + line)

    def _add(self, line: str) -> None:
        if len(self.lines) < MAX_LINES:
            self.lines.append(line[:MAX_LINE_LENGTH])

    def __repr__(self) -> str:
        return f"<Transcript {self.listener}: {len(self.lines)} lines>"
