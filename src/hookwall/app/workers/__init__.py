"""``hookwall run --workers N``: N proxy processes on one port, under one supervisor.

One Python process uses one core. The supervisor binds every listen address with SO_REUSEPORT
and keeps them, creates the CA and the delivery store once (workers would race to), then
starts N workers: ``python -m hookwall <the same arguments> --worker-listen MODE@HOST:PORT...
--worker I/N``. Each worker is a complete ``hookwall run`` whose listeners join the ports'
SO_REUSEPORT groups (``mitm/listener.py``); the kernel spreads new connections over them.

- The supervisor restarts a worker that exits, forwards signals, and exits 0 once every
  worker has drained after SIGTERM/SIGINT (``supervisor.py`` says how).
- The supervisor reserves one port per worker for its internal listener (where its hops and
  retries go, so a chain stays on its worker). Every worker is told all of them and the
  supervisor's admin address, and refuses them as destinations (the loop guard,
  ``destinations/selfaddr.py``).
- Workers share the secret that marks hookwall's own redirect hops (a hop may land on any
  worker); it reaches them on stdin, never in argv or the environment (``handover.py``).
- A worker whose supervisor disappears (SIGKILL) stops itself, gracefully (``worker.py``).
- Limits: without a shared backend each worker enforces its share of every cap
  (``limits/share.py``); with ``limits: {backend: redis://...}`` they share one cap.
- Log lines of worker processes carry ``worker`` (1..N) and ``pid``.
- ``--admin-listen`` is the supervisor's, answering for every worker (``app/workeradmin.py``).

Modules: ``start`` (what the supervisor does once: ports, CA, store), ``supervisor`` (running
the workers: restarts, signals, exit status, the admin listener), ``handover`` (what the
supervisor tells each worker), ``worker`` (the worker side, and serving one proxy process).
"""

from hookwall.app.workers.handover import WorkerInfo, parse_worker
from hookwall.app.workers.start import supervise, workers_count
from hookwall.app.workers.worker import current_worker, enter_worker, run_proxy

__all__ = [
    "WorkerInfo",
    "current_worker",
    "enter_worker",
    "parse_worker",
    "run_proxy",
    "supervise",
    "workers_count",
]
