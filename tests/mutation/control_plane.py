"""One kube-apiserver for a whole `make mutation` run (see conftest.py): prints its admin
kubeconfig's path, then serves until stdin closes or the process is terminated.

Usage: python -m tests.mutation.control_plane
"""

from __future__ import annotations

import signal
import sys
import threading

from tests.support.kube import start_control_plane


def main() -> None:
    plane = start_control_plane()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print(plane.kubeconfig, flush=True)
    try:
        done.wait()
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
