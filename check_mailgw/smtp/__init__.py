"""SMTP: the client, what replies mean, and the smtp chain (which o365-smtp extends)."""
