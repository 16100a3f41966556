"""The daemon's operational surface: ``/healthz``, ``/livez`` and ``/metrics`` over HTTP
(:mod:`.server`, :mod:`.checks`, :mod:`.prometheus`) and systemd's notify protocol
(:mod:`.systemd`)."""
