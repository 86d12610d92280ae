"""A live dashboard of the running stack: one self-contained page served locally.

It follows ``recommendations`` and ``clicks`` from their ends and ``items`` from the
beginning (``follower.py``), aggregates throughput, latency, the latest answers and
segment sizes (``stats.py``), polls the workers, the trainer and Triton (``probes.py``),
and serves ``/`` (the page), ``/api/summary`` (JSON) and ``/healthz`` (``app.py``).
``python -m services.dashboard`` runs it; the embedded stack starts it after the workers.
"""

from services.dashboard.settings import DashboardSettings

__all__ = ["DashboardSettings"]
