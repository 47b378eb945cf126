"""check_mailgw: a Nagios/Icinga plugin that proves a mail gateway still delivers."""

__version__ = "0.1.0"
