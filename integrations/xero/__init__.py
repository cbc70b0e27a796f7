"""Xero: the second accounting package (adapter, client, OAuth, webhooks and a local simulator)."""
