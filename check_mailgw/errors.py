"""Errors about the plugin's own input, reported as UNKNOWN in one line."""


class SettingsError(Exception):
    """Bad or missing input: the message names the option or file and what is wrong."""
