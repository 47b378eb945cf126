"""Thresholds: Nagios ranges of seconds and whole days left, each checked, and in order
(WARNING before CRITICAL)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from nagiosplugin import Range

from check_mailgw.errors import SettingsError
from check_mailgw.validators import DECIMAL, option_name

# Compiled by re on first use: only a run given -w, -c or a token threshold needs it.
_NAGIOS_RANGE = rf"(?P<invert>@)?(?:(?P<start>~|[+-]?{DECIMAL})?:)?(?P<end>[+-]?{DECIMAL})?"
_DAYS = re.compile(r"[0-9]{1,6}")
MAX_DAYS = 36500  # a hundred years: more is a typo, not a certificate's lifetime
RANGE_EXAMPLES = "5, 10:, ~:20 or @1:3"


def check_range(value: Any, option: str) -> str | None:
    """A Nagios range ([@][start:][end]) with finite, plain numbers; empty means none."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    expected = f"expected a Nagios range such as {RANGE_EXAMPLES}"
    match = re.fullmatch(_NAGIOS_RANGE, text) if not isinstance(value, bool) else None
    if not match or (match["start"] in (None, "~") and match["end"] is None):
        raise SettingsError(f"{option} {value!r}: {expected}")
    start = match["start"] if match["start"] not in (None, "~") else "0"
    if match["start"] != "~" and match["end"] is not None and float(start) > float(match["end"]):
        raise SettingsError(f"{option} {value!r}: {expected} (here the start, {start}, is "
                            f"above the end, {match['end']})")
    Range(text)  # the grammar above is a subset of what nagiosplugin parses
    return text


def check_time_thresholds(given: Mapping[str, Any], warning_key: str,
                          critical_key: str) -> tuple[str | None, str | None]:
    """A WARNING and a CRITICAL range of seconds taken, each valid and in order."""
    names = option_name(warning_key), option_name(critical_key)
    warning = check_range(given.get(warning_key), names[0])
    critical = check_range(given.get(critical_key), names[1])
    what = "the token's acquisition time" if warning_key.startswith("token") else \
        "the total time"
    check_range_order(warning, critical, names, what)
    return warning, critical


def check_range_order(warning: str | None, critical: str | None, options: tuple[str, str],
                      counts: str) -> None:
    """Time ranges: the warning range lies inside the critical one, so WARNING comes first.

    A range with @ alerts inside itself: there, any order may be meant.
    """
    if warning is None or critical is None:
        return
    warn, crit = Range(warning), Range(critical)
    if warn.invert or crit.invert:
        return
    shown = f"{options[0]} {warning!r}", f"{options[1]} {critical!r}"
    check_threshold_order((shown[0], warn.end), (shown[1], crit.end), counts, "more")
    if warn.start < crit.start:
        raise SettingsError(f"{shown[0]} starts below {shown[1]}: the warning range must lie "
                            "inside the critical one, so that WARNING comes before CRITICAL")


def check_threshold_order(warning: tuple[str, float], critical: tuple[str, float],
                          counts: str, worse: Literal["more", "fewer"], given: str = "") -> None:
    """WARNING comes before CRITICAL: one rule for every pair of thresholds.

    Each threshold is (how the message names it and its value, the value); `given` opens
    the message. Times get worse as they grow, so warning is the smaller number; days left
    get worse as they shrink, so critical is. Equal values are allowed: CRITICAL at once.
    """
    unit, role = ("seconds", "warning") if worse == "more" else ("days", "critical")
    smaller, larger = (warning, critical) if worse == "more" else (critical, warning)
    if smaller[1] > larger[1]:
        raise SettingsError(f"{given}{smaller[0]}: more {unit} than {larger[0]}; both count "
                            f"{counts}, so {role} is the smaller number")


def check_certificate_days(value: Any) -> tuple[int, int]:
    expected = f"-D/--certificate-days {value!r}: expected WARN[,CRIT] days such as 14,7"
    parts = str(value).strip().split(",")
    if isinstance(value, bool) or len(parts) not in (1, 2) or \
            not all(_DAYS.fullmatch(p.strip()) for p in parts):
        raise SettingsError(expected)
    days = [int(p) for p in parts]
    if any(d > MAX_DAYS for d in days):
        raise SettingsError(f"{expected}, at most {MAX_DAYS} (a hundred years)")
    warn, crit = (days[0], days[1]) if len(days) == 2 else (days[0], 0)
    check_threshold_order((f"WARN {warn}", warn), (f"CRIT {crit}", crit),
                          "days left on the server certificate",
                          worse="fewer", given=f"-D/--certificate-days {str(value).strip()!r}: ")
    return warn, crit


def check_days(value: Any, option: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not _DAYS.fullmatch(text):
        raise SettingsError(f"{option} {value!r}: expected a whole number of days, such as 30")
    if int(text) > MAX_DAYS:
        raise SettingsError(f"{option} {value!r}: at most {MAX_DAYS} days (a hundred years)")
    return int(text)


def check_secret_days(warning: Any, critical: Any) -> tuple[int, int]:
    """Days left below which the credential is WARNING, and CRITICAL (never a Nagios range)."""
    warn, crit = check_days(warning, "--secret-warning"), check_days(critical, "--secret-critical")
    check_threshold_order((f"--secret-warning {warn}", warn), (f"--secret-critical {crit}", crit),
                          "days left", worse="fewer")
    return warn, crit
