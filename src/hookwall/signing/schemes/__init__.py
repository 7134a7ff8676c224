"""Signature schemes: the headers a request gets, computed over exactly the bytes sent.

Pure functions of (body, message id, timestamp, keys): no I/O, no clock (the caller passes
``timestamp`` and ``now``), no mitmproxy. Formats, with their published test vectors, as a
receiver checks them: docs/verifying.md (the vectors are asserted in
tests/unit/signing/test_signing.py).

Modules: ``base`` (the ``Scheme`` protocol, ``sign_request``, the checks every scheme makes),
one per scheme family (``standard``: Standard Webhooks and Svix, with the message ids they
sign; ``github``; ``stripe``; ``generic``: the configurable HMAC header), and ``registry``
(a scheme from its policy name and options, and the secrets it takes).
"""

from hookwall.signing.schemes.base import Scheme, SigningError, SignResult, sign_request
from hookwall.signing.schemes.generic import GenericHmac
from hookwall.signing.schemes.github import GitHub
from hookwall.signing.schemes.registry import make_scheme, parse_secret_for
from hookwall.signing.schemes.standard import (
    StandardWebhooks,
    is_valid_message_id,
    new_message_id,
)
from hookwall.signing.schemes.stripe import Stripe

__all__ = [
    "GenericHmac",
    "GitHub",
    "Scheme",
    "SignResult",
    "SigningError",
    "StandardWebhooks",
    "Stripe",
    "is_valid_message_id",
    "make_scheme",
    "new_message_id",
    "parse_secret_for",
    "sign_request",
]
