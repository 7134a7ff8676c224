"""The delivery store: every exchange, queryable (``hookwall logs``), in SQLite by default.

Modules: ``record`` (a redacted, capped row built from an exchange), ``db`` (the ``Store``: a
connection to the SQLite file, opened for writing or for reading), ``schema`` (the file, the
table and its migrations), ``writing`` (inserts), ``retention`` (age and size limits),
``reading`` (the queries, rows read back), ``query`` (the filters of ``hookwall logs``),
``writer`` (the background thread the proxy hands records to). No mitmproxy here.
"""

from hookwall.deliveries.store.db import Store, StoreError
from hookwall.deliveries.store.query import Filters, StatusFilter, matches, parse_status, parse_time
from hookwall.deliveries.store.reading import Row
from hookwall.deliveries.store.record import REDACTED, Record, build_record, capture, redact_headers
from hookwall.deliveries.store.schema import STORE_FILENAME, store_path
from hookwall.deliveries.store.writer import Retention, StoreWriter

__all__ = [
    "REDACTED",
    "STORE_FILENAME",
    "Filters",
    "Record",
    "Retention",
    "Row",
    "StatusFilter",
    "Store",
    "StoreError",
    "StoreWriter",
    "build_record",
    "capture",
    "matches",
    "parse_status",
    "parse_time",
    "redact_headers",
    "store_path",
]
