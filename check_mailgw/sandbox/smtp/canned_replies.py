"""SMTP replies the sandbox sends, in one place.

Replies with braces are templates filled in when sent. The Exchange Online
texts follow Microsoft's documentation and replies reported in public threads; the
others follow Postfix wording.
"""

SANDBOX_HOSTNAME = "mail.sandbox.test"
SANDBOX_GREETING_TEXT = "ESMTP check_mailgw sandbox"

EXCHANGE_HOSTNAME = "SN4PR0501CA0042.outlook.office365.com"
EXCHANGE_GREETING_TEXT = "Microsoft ESMTP MAIL Service ready at {date}"
# The front-end server named in reply trailers, and the trailer itself:
# "[<host> <ISO time> <id>]", the id being what support cases quote.
EXCHANGE_BACKEND = "SN4PR0501CA0042.namprd05.prod.outlook.com"
_TRAILER = f"[{EXCHANGE_BACKEND} {{timestamp}} 08DC1234567890AB]"

# Session
BYE = "221 2.0.0 Bye"
OK = "250 2.0.0 Ok"
SENDER_OK = "250 2.1.0 Ok"
RECIPIENT_OK = "250 2.1.5 Ok"
QUEUED = "250 2.0.0 Ok: queued as {queue_id}"
EHLO_SYNTAX = "501 5.5.4 Syntax: EHLO hostname"
# aiosmtpd's own wording, repeated where the sandbox answers STARTTLS itself.
STARTTLS_READY = "220 Ready to start TLS"
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
INTERNAL_ERROR = "451 4.3.0 Internal sandbox error"

# Authentication
AUTH_SUCCESSFUL = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
STARTTLS_FIRST = "530 5.7.0 Must issue a STARTTLS command first"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
ALREADY_AUTHENTICATED = "503 5.5.1 Error: already authenticated"
AUTH_SYNTAX = "501 5.5.4 Syntax: AUTH mechanism [initial-response]"
MECHANISM_UNKNOWN = "504 5.5.4 Unrecognized authentication type"
AUTH_MALFORMED = "501 5.5.2 Cannot decode response"

# Envelope rules
SENDER_NOT_OWNED = "553 5.7.1 <{address}>: Sender address rejected: not owned by user {user}"
RECIPIENT_UNKNOWN = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"

# Failure scenarios
SERVICE_NOT_AVAILABLE = "421 4.3.2 Service not available, closing transmission channel"
NO_SMTP_SERVICE = "554 5.3.2 mail.sandbox.test No SMTP service here"
SSH_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
EXCHANGE_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    f"Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. {_TRAILER}"
)
EXCHANGE_BASIC_AUTH_RETIRED = (
    "550 5.7.30 Basic authentication is not supported for Client Submission."
)
EXCHANGE_SERVER_BUSY = (
    "451 4.7.500 Server busy. Please try again later. [SN4PR0501CA0042.namprd05.prod.outlook.com]"
)

# Exchange Online's own session texts, for the Exchange SMTP listener
EXCHANGE_EHLO_HELLO = "{hostname} Hello [{peer}]"
EXCHANGE_MESSAGE_SIZE = 157_286_400
EXCHANGE_STARTTLS_READY = "220 2.0.0 SMTP server ready"
EXCHANGE_OK = "250 2.0.0 OK"
EXCHANGE_RESETTING = "250 2.0.0 Resetting"
EXCHANGE_SENDER_OK = "250 2.1.0 Sender OK"
EXCHANGE_RECIPIENT_OK = "250 2.1.5 Recipient OK"
EXCHANGE_QUEUED = f"250 2.0.0 OK <{{message_id}}> [Hostname={EXCHANGE_BACKEND}]"
EXCHANGE_BYE = "221 2.0.0 Service closing transmission channel"
EXCHANGE_NOT_AUTHENTICATED = f"530 5.7.57 Client not authenticated to send mail. {_TRAILER}"
EXCHANGE_AUTH_NOT_OFFERED = f"504 5.7.4 Unrecognized authentication type {_TRAILER}"
EXCHANGE_RECIPIENT_NOT_FOUND = (
    "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient {address} not found by SMTP address "
    "lookup"
)

# Exchange Online's refusals of XOAUTH2 and of the message
EXCHANGE_AUTH_UNSUCCESSFUL = f"535 5.7.3 Authentication unsuccessful {_TRAILER}"
EXCHANGE_XOAUTH2_MALFORMED = "501 5.5.124 Invalid XOAUTH2 auth data"
EXCHANGE_MAILBOX_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    f"Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. {_TRAILER}"
)
EXCHANGE_CONDITIONAL_ACCESS = (
    "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be "
    f"authenticated successfully. Contact your administrator. {_TRAILER}"
)
EXCHANGE_MAILBOX_LOGON_FAILURE = (
    "430 4.2.0 STOREDRV; mailbox logon failure; Failed to process message due to a transient "
    "exception with message [BeginDiagnosticData]Cannot open mailbox "
    "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn={user}. "
    "MapiExceptionLogonFailed: Logon failed.[EndDiagnosticData] "
    f"[Hostname={EXCHANGE_BACKEND}]"
)
EXCHANGE_SEND_AS_DENIED = (
    "554 5.2.252 SendAsDenied; {user} not allowed to send as {sender}; "
    "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to "
    "process message due to a permanent exception with message [BeginDiagnosticData]Cannot "
    f"submit message.[EndDiagnosticData] [Hostname={EXCHANGE_BACKEND}]"
)
EXCHANGE_NO_SEND_AS_PERMISSION = (
    "550 5.7.60 SMTP; Client does not have permissions to send as this sender "
    f"[{EXCHANGE_BACKEND} {{timestamp}}]"
)
EXCHANGE_TLS_TOO_OLD = (
    "421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support "
    "TLS 1.2. Visit https://aka.ms/smtp_auth_tls."
)
EXCHANGE_TEMPORARY_ERROR = (
    f"451 4.7.0 Temporary server error. Please try again later. PRX4 {_TRAILER}"
)
