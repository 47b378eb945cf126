"""Microsoft 365: clouds, tokens, Graph, the error catalogue, Exchange Online as an SMTP
dialect with its XOAUTH2 login, and the two app modes."""
