"""A local Microsoft 365: the tenant, Entra ID's identity provider, Graph, and Exchange SMTP
with XOAUTH2."""
