"""A mode's probe: the state one run of its chain carries from step to step.

A mode subclasses Probe, lists its chain in steps() and ends its own connection in
close(). What every mode prepares before the clock starts, and how a chain is run and its
connection closed whatever happens, is here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from check_mailgw.chain import Dialogue, Step, run_chain
from check_mailgw.deadline import Deadline
from check_mailgw.net.reach import Reach
from check_mailgw.net.tls import client_context

if TYPE_CHECKING:
    from check_mailgw.outcome import Report
    from check_mailgw.secret import Redactor
    from check_mailgw.settings import Settings


class Probe:
    """The first hop, the TLS context and the deadline of one run, and the run itself."""

    def __init__(self, settings: Settings, redactor: Redactor, first_hop: tuple[str, int],
                 tls: bool = True) -> None:
        self.settings = settings
        self.redactor = redactor
        self.dialogue = Dialogue()
        # Local preparations come before the clock starts, so that step times are the
        # network's: loading the CA store, and with --dns-server dnspython's import.
        self.reach = Reach(*first_hop, settings.address_family, settings.dns_server)
        self.tls_context = client_context(settings.ca_file, settings.insecure) if tls else None
        self.deadline = Deadline(settings.timeout)

    @property
    def target(self) -> str:
        """What the first line names."""
        return self.settings.target

    def steps(self) -> list[Step]:
        raise NotImplementedError

    def close(self) -> None:
        if self.reach.sock:
            self.reach.sock.close()

    def run(self) -> Report:
        s = self.settings
        try:
            return run_chain(s.mode, self.target, self.steps(), self.deadline, self.dialogue,
                             s.timeout_state)
        finally:
            self.close()
