"""Connectors: what an identity source holds, read through its API (see ``base``)."""
