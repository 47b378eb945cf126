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
    # The smtp chain (smtp/mode.py) with Exchange Online's dialect, which a password login
    # may reach: its replies' meanings and the retirement of basic authentication there.
    "smtp": "check_mailgw.microsoft.exchange_smtp",
    "o365-smtp": "check_mailgw.microsoft.o365_smtp",
    "graph": "check_mailgw.microsoft.graph_mode",
}


def run_mode(settings: Settings, redactor: Redactor) -> Report:
    module = importlib.import_module(MODES[settings.mode])
    return module.run(settings, redactor)
