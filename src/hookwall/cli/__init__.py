"""The ``hookwall`` command line, the top layer: ``main.py`` builds the parser from one module
per command (``run``, ``check``, ``explain``, ``keys``, ``ca``, ``logs`` and its ``show``,
``replay``, ``send_test``), each adding its own sub-parser and handler. The other modules are
what several commands share (``command``, ``datadir``, ``policyargs``, ``storeargs``,
``sending``, ``proxyclient``, ``terminal``, ``table``) or one part of a command kept apart
(``logfile`` for ``logs --file``, ``bodies`` for the bodies ``logs show`` prints)."""
