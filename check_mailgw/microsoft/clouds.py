"""Microsoft's clouds: where each one's identity provider, Graph and SMTP submission live.

Sources: Microsoft Learn (national cloud deployments, Exchange Online endpoints); the SMTP
hosts of usgov and china are seen working in the field, usgov-dod's is unconfirmed.
Explicit options (--authority, --graph-url, -H, -p) override every value here.
"""

from __future__ import annotations

from typing import NamedTuple


class Cloud(NamedTuple):
    """Domain model: one Microsoft cloud's endpoints (a NamedTuple: a frozen dataclass costs
    every run, smtp ones included, a few times as much to define)."""

    name: str
    authority_host: str
    graph_url: str
    exchange_resource: str
    smtp_host: str

    @property
    def authority(self) -> str:
        return f"https://{self.authority_host}"

    @property
    def graph_resource(self) -> str:
        return self.graph_url

    def default_scope(self, mode: str) -> str:
        resource = self.exchange_resource if mode == "o365-smtp" else self.graph_resource
        return f"{resource}/.default"


CLOUDS: dict[str, Cloud] = {cloud.name: cloud for cloud in (
    Cloud("global", "login.microsoftonline.com", "https://graph.microsoft.com",
          "https://outlook.office365.com", "smtp.office365.com"),
    Cloud("usgov", "login.microsoftonline.us", "https://graph.microsoft.us",
          "https://outlook.office365.us", "smtp.office365.us"),
    Cloud("usgov-dod", "login.microsoftonline.us", "https://dod-graph.microsoft.us",
          "https://outlook-dod.office365.us", "outlook-dod.office365.us"),
    Cloud("china", "login.partner.microsoftonline.cn", "https://microsoftgraph.chinacloudapi.cn",
          "https://partner.outlook.cn", "smtp.partner.outlook.cn"),
)}

# Microsoft's own identity hosts: msal may ask instance discovery of these, and of no other.
MICROSOFT_AUTHORITY_HOSTS = frozenset(cloud.authority_host for cloud in CLOUDS.values()) | {
    "login.microsoft.com", "login.windows.net", "sts.windows.net", "login.chinacloudapi.cn",
}

EXCHANGE_SMTP_PORT = 587  # STARTTLS, client submission
