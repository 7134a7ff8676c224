"""Destination guard: host canonicalisation, address classification, DNS and pinning."""
