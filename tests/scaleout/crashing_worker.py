"""A daemon worker that SIGKILLs itself at a chosen point of the commit path of the first
batch that sent alerts once ``--after`` alerts were sent: ``checkpoint`` (the batch's alerts
are on the alerts topic, the alert state not yet written, the offsets not committed) or
``commit`` (state written, offsets not committed). Nothing runs after the signal, as with an
operator's ``kill -9``; settings come from the environment, as for ``seawatch run``.

``python -m tests.scaleout.crashing_worker {checkpoint,commit} --after N``
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from seawatch.config import load_settings
from seawatch.daemon import build_daemon

log = logging.getLogger("seawatch.crashing_worker")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("point", choices=["checkpoint", "commit"])
    parser.add_argument("--after", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(name)s %(message)s")
    daemon = build_daemon(load_settings())
    outputs, pipeline = daemon.pipeline.alert_outputs, daemon.pipeline
    target = pipeline.alerts if args.point == "checkpoint" else pipeline.source
    name = "checkpoint" if args.point == "checkpoint" else "commit"
    original = getattr(target, name)
    counted = [0]

    def dying(*call_args, **kwargs):
        fresh, counted[0] = outputs.emitted - counted[0], outputs.emitted
        if fresh and outputs.emitted >= args.after:
            log.warning("crash_point point=%s alerts_sent=%d", args.point, outputs.emitted)
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*call_args, **kwargs)

    setattr(target, name, dying)
    daemon.run()


if __name__ == "__main__":
    main()
