"""`python -m emulators`: start the local stack and print the environment a bot needs; Ctrl-C stops it.
`python -m emulators demo`: the local stack, the real bot (`python -m bot`) and a Slack channel in the terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .stack import LocalStack


def serve() -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stack = LocalStack(poll_interval_seconds=1.0, poll_max_interval_seconds=2.0, run_timeout_seconds=300).start()
    print("# The local stack is up. Point a bot at it with this environment:")
    for name, value in stack.env().items():
        print(f"export {name}={value}")
    print("# Ctrl-C stops it.", flush=True)
    stopped.wait()
    stack.stop()
    print("# stopped", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["serve", "demo"], default="serve")
    if parser.parse_args().mode == "demo":
        from .demo import run_demo

        return run_demo()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
