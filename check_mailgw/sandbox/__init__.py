"""A local imitation of mail gateways and Microsoft 365, for trying check_mailgw and its tests.

Start servers with check_mailgw.sandbox.smtp.listeners.start_smtp,
check_mailgw.sandbox.plumbing.dns_server.start_dns and check_mailgw.sandbox.m365.cloud.start_m365
(identity provider and Graph over HTTPS, Exchange SMTP with XOAUTH2), or run the
mailgw-sandbox command. The servers need the "sandbox" extra (aiosmtpd, trustme),
which the plugin itself does not: mailgw-sandbox says how to add it where it is missing.
"""
