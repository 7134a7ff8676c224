"""What the unit tests share: typed doors to mitmproxy's test helpers (``mitm``), test flows and
the denial contract's assertions (``flows``), and a live in-process mitmproxy (``live``)."""
