"""A local imitation of mail gateways, for trying check_mailgw and for its tests.

Start servers with check_mailgw.sandbox.smtp_server.start_smtp and
check_mailgw.sandbox.dns_server.start_dns, or run the mailgw-sandbox command.
"""
