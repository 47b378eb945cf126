"""Access token claims: decoded to explain a refusal, never trusted (the service decides)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from check_mailgw.microsoft.clouds import CLOUDS

# Audiences each service accepts, in the forms tokens carry them (Microsoft Learn: access
# token claims reference; Exchange Online's OAuth documentation).
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_AUDIENCES = frozenset(
    {cloud.exchange_resource for cloud in CLOUDS.values()}
    | {"https://outlook.office.com", "https://ps.outlook.com", EXCHANGE_APP_ID})
GRAPH_AUDIENCES = frozenset({cloud.graph_resource for cloud in CLOUDS.values()} | {GRAPH_APP_ID})
LAST_TIME = 253402300799  # 9999-12-31 23:59:59 UTC: later than any token's exp can mean
SERVICES = {"o365-smtp": ("Exchange Online", EXCHANGE_AUDIENCES, "SMTP.SendAsApp"),
            "graph": ("Microsoft Graph", GRAPH_AUDIENCES, "Mail.Send")}


class Claims:
    """Domain model: what an access token says about itself, as far as it can be read."""

    __slots__ = ("values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    @classmethod
    def of(cls, token: str) -> Claims:
        """The payload of a JWT, or no claims at all for a token that is not one."""
        parts = token.split(".")
        if len(parts) != 3:
            return cls({})
        try:
            payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            values = json.loads(payload)
        except (binascii.Error, ValueError):
            return cls({})
        return cls(values if isinstance(values, dict) else {})

    @property
    def audience(self) -> str:
        return str(self.values.get("aud", "")).rstrip("/")

    @property
    def roles(self) -> list[str]:
        roles = self.values.get("roles", [])
        return [str(r) for r in roles] if isinstance(roles, list) else []

    @property
    def tenant(self) -> str:
        return str(self.values.get("tid", "")).lower()

    @property
    def app(self) -> str:
        return str(self.values.get("appid") or self.values.get("azp") or "")

    @property
    def expires(self) -> float | None:
        exp = self.values.get("exp")
        usable = isinstance(exp, int | float) and not isinstance(exp, bool) and \
            0 <= exp <= LAST_TIME
        return float(exp) if usable else None  # type: ignore[arg-type]

    def fault(self) -> str | None:
        """What makes the claims unusable: an exp that is no time at all."""
        if "exp" in self.values and self.expires is None:
            return f"its exp claim {str(self.values['exp'])[:40]} is not a time"
        return None

    def seconds_left(self, now: float | None = None) -> float | None:
        return None if self.expires is None else self.expires - (now or time.time())

    def shown(self) -> dict[str, Any]:
        """The claims worth showing at -v (never the signature or the token itself)."""
        facts: dict[str, Any] = {"aud": self.audience or "-", "tid": self.tenant or "-",
                                 "appid": self.app or "-", "roles": self.roles or "none"}
        if self.expires is not None:
            facts["exp"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.expires))
        return facts


def service_of(audience: str) -> str | None:
    """Which service a token's audience names, if it is one this check knows."""
    for name, audiences, _ in SERVICES.values():
        if audience in audiences:
            return name
    return None
