"""TLS handshakes that fail the way real servers fail them: with an alert to the client.

asyncio drops the alert when a server-side handshake fails and just closes the
socket, which a client reports as an unexpected EOF instead; so the doomed
handshake runs here, on memory buffers, and its alert is sent by hand.
"""

import asyncio
import ssl


class HandshakeRefusal:
    """Server side of one TLS handshake that cannot succeed, yielding the bytes to send back."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the client; return what goes back (the alert, once it failed)."""
        self._incoming.write(data)
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            self.finished = True
        else:
            # Only a client offering what the context allows gets here; it is
            # sent on its way all the same.
            self.finished = True
        return self._outgoing.read()


class RefusedHandshake(asyncio.Protocol):
    """An implicit-TLS connection whose handshake fails with an alert."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._refusal = HandshakeRefusal(context)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        reply = self._refusal.feed(data)
        if reply:
            self._transport.write(reply)
        if self._refusal.finished:
            # close() still sends what is buffered: the alert goes out.
            self._transport.close()

    def eof_received(self) -> bool:
        return False
