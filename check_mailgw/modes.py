"""The gateway modes: each is a module with a run(settings, redactor) -> Report.

Modules are imported only when their mode is used, so a mode never pays for another's
libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from check_mailgw.outcome import Report
    from check_mailgw.secret import Redactor
    from check_mailgw.settings import Settings

MODES = {
    "smtp": "check_mailgw.smtp.mode",
    "o365-smtp": "check_mailgw.microsoft.o365_smtp",
    "graph": "check_mailgw.microsoft.graph_mode",
}


def run_mode(settings: Settings, redactor: Redactor) -> Report:
    module = importlib.import_module(MODES[settings.mode])
    if settings.mode == "smtp":
        # A password login may reach Exchange Online: its replies' meanings, and the
        # retirement of basic authentication there. smtp/ itself knows only SMTP.
        from check_mailgw.microsoft.exchange_smtp import PASSWORD_LOGIN

        return module.run(settings, redactor, PASSWORD_LOGIN)
    return module.run(settings, redactor)
