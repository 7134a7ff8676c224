"""hookwall: an egress proxy for outbound webhooks."""

__version__ = "0.1.0"
