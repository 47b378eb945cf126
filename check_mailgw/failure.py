"""When the check cannot judge the gateway (bad input, the run's watchdog, a bug of ours):
UNKNOWN, in the form the command line asked for."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from check_mailgw.first_line import PREFIX, fit_text, line_budget
from check_mailgw.nagios_check import settings_notes
from check_mailgw.outcome import State
from check_mailgw.text import one_line

if TYPE_CHECKING:
    from check_mailgw.json_output import Writable
    from check_mailgw.settings import Settings



@dataclass(frozen=True)
class Failure:
    """Why there is no judgement of the gateway: bad input, the run's watchdog, our own bug."""

    kind: str  # bad_input, timeout, interrupted, internal_error
    message: str
    error: BaseException | None = None  # its traceback is shown at -vvv


def write_failure(failure: Failure, settings: Settings | None, argv: Sequence[str] | None,
                  redact: Callable[[str], str], out: Writable) -> None:
    """UNKNOWN in the form asked for; before the options were read, as far as they can tell."""
    output_format, verbosity = (settings.output_format, settings.verbosity) if settings \
        else requested_output(argv)
    trace = None
    if failure.error is not None and verbosity >= 3:
        import traceback  # costs an import on every run otherwise

        trace = "".join(traceback.format_exception(failure.error))
    message = one_line(failure.message)  # a file name may hold a line break
    summary = fit_text(message, line_budget(State.UNKNOWN.name))
    if output_format == "json":
        from check_mailgw.json_output import document, dump

        error = {"kind": failure.kind, "message": failure.message, "traceback": trace}
        out.write(dump(redact, document(State.UNKNOWN, summary, settings, error=error)) + "\n")
        return
    out.write(f"{PREFIX} UNKNOWN - {summary}\n")
    if summary != message:
        out.write(f"{message}\n")  # all of it, as long output
    if verbosity >= 1:
        for note in settings_notes(settings):
            out.write(f"note: {note}\n")
    if trace:
        out.write(trace)


def requested_output(argv: Sequence[str] | None) -> tuple[str, int]:
    """--format and -v as typed, for a failure before the options could be parsed."""
    args = list(sys.argv[1:] if argv is None else argv)
    output_format, verbosity = "nagios", 0
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--format" and index + 1 < len(args):
            output_format = args[index + 1]
        elif arg.startswith("--format="):
            output_format = arg.partition("=")[2]
        elif arg == "--verbose":
            verbosity += 1
        elif re.fullmatch(r"-v+", arg):
            verbosity += len(arg) - 1
    return output_format, verbosity
