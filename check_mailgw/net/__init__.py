"""The network steps every mode shares: DNS, TCP, TLS, HTTPS."""
