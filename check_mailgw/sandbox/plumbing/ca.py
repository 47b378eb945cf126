"""A throwaway certificate authority for the sandbox's TLS servers."""

import datetime
import ssl
from pathlib import Path
from typing import Literal

import trustme

ServerCert = Literal["valid", "wrong-host", "expired", "expiring"]

SERVER_IDENTITIES = ("mail.sandbox.test", "localhost", "127.0.0.1", "::1")
WRONG_HOST_IDENTITY = "other.example.net"


class SandboxCA:
    """Certificate authority minted per run; issues the sandbox server certificates."""

    def __init__(self) -> None:
        self._ca = trustme.CA(
            organization_name="check_mailgw sandbox", organization_unit_name="throwaway CA"
        )
        self._certs: dict[ServerCert, trustme.LeafCert] = {}

    def write_ca(self, path: str | Path) -> Path:
        """Write the CA certificate as PEM, for clients' --ca-file."""
        path = Path(path)
        self._ca.cert_pem.write_to_path(str(path))
        return path

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self._ca.cert_pem.bytes()

    def client_context(self) -> ssl.SSLContext:
        """A default client context that trusts this CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    def server_context(self, cert: ServerCert = "valid") -> ssl.SSLContext:
        """A server context presenting the named certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf(cert).configure_cert(context)
        return context

    def handshake_failure_context(self) -> ssl.SSLContext:
        """A server context with which every handshake with a standard client fails.

        It allows only TLS 1.2 pre-shared-key suites and has no key to share,
        so the handshake ends in a handshake_failure alert (see tls_refusal).
        """
        context = self.server_context("valid")
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("PSK")
        return context

    def _leaf(self, cert: ServerCert) -> trustme.LeafCert:
        if cert not in self._certs:
            self._certs[cert] = self._issue(cert)
        return self._certs[cert]

    def _issue(self, cert: ServerCert) -> trustme.LeafCert:
        now = datetime.datetime.now(datetime.UTC)
        day = datetime.timedelta(days=1)
        if cert == "valid":
            return self._issue_for(SERVER_IDENTITIES, now - day, now + 365 * day)
        if cert == "wrong-host":
            return self._issue_for((WRONG_HOST_IDENTITY,), now - day, now + 365 * day)
        if cert == "expired":
            return self._issue_for(SERVER_IDENTITIES, now - 365 * day, now - 3 * day)
        if cert == "expiring":
            return self._issue_for(SERVER_IDENTITIES, now - 80 * day, now + 10 * day)
        raise ValueError(f"unknown server certificate {cert!r}")

    def _issue_for(
        self,
        identities: tuple[str, ...],
        not_before: datetime.datetime,
        not_after: datetime.datetime,
    ) -> trustme.LeafCert:
        return self._ca.issue_cert(
            *identities,
            common_name=identities[0],
            organization_name="check_mailgw sandbox",
            organization_unit_name=f"{identities[0]} server",
            not_before=not_before,
            not_after=not_after,
        )
