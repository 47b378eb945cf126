"""SMTP replies the sandbox sends, in one place.

Replies with braces are templates filled in when sent. The Exchange Online
texts follow REFERENCE.md section 4; the others follow Postfix wording.
"""

SANDBOX_HOSTNAME = "mail.sandbox.test"
SANDBOX_GREETING_TEXT = "ESMTP check_mailgw sandbox"

EXCHANGE_HOSTNAME = "SN4PR0501CA0042.outlook.office365.com"
EXCHANGE_GREETING_TEXT = "Microsoft ESMTP MAIL Service ready at {date}"

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
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[SN4PR0501CA0042.namprd05.prod.outlook.com {timestamp} 08DC1234567890AB]"
)
EXCHANGE_BASIC_AUTH_RETIRED = (
    "550 5.7.30 Basic authentication is not supported for Client Submission."
)
EXCHANGE_SERVER_BUSY = (
    "451 4.7.500 Server busy. Please try again later. [SN4PR0501CA0042.namprd05.prod.outlook.com]"
)
