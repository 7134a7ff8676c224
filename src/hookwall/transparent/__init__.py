"""Transparent mode (``hookwall run --mode transparent``): senders keep their URLs and set no
proxy; the kernel redirects their outbound TCP to hookwall, which reads each connection's
original destination. ``rules`` writes the redirect rule sets ``hookwall redirect-rules``
prints."""
