"""`python -m emulators`: start the local stack and print the environment a bot needs; Ctrl-C stops it.
`python -m emulators --only slack` (or s3, snowflake, databricks; comma-separated): some of them alone.
`python -m emulators demo`: the local stack, the real bot (`python -m bot`) and a Slack channel in the terminal.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .stack import SERVICES, LocalStack


def serve(services: tuple[str, ...]) -> int:
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stack = LocalStack(poll_interval_seconds=1.0, poll_max_interval_seconds=2.0, run_timeout_seconds=300,
                       services=services).start()
    print(f"# The local stack is up ({', '.join(sorted(stack.services))}). Point a bot at it with this environment:")
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
    parser.add_argument("--only", default=",".join(SERVICES), help=f"comma-separated, from: {', '.join(SERVICES)}")
    args = parser.parse_args()
    if args.mode == "demo":
        from .demo import run_demo

        return run_demo()
    services = tuple(name.strip() for name in args.only.split(",") if name.strip())
    if unknown := set(services) - set(SERVICES):
        parser.error(f"unknown service(s) {', '.join(sorted(unknown))}; choose from {', '.join(SERVICES)}")
    return serve(services)


if __name__ == "__main__":
    sys.exit(main())
