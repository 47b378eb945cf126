"""The sandbox's SMTP servers: its dialect on aiosmtpd, scripted misbehaviour, TLS refusals."""
