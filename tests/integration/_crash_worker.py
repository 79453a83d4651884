"""Run the local queue worker on a project until killed (the crash test's victim process)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from qr.runtime.local.engine import Engine
from qr.runtime.local.worker import Worker
from qr.runtime.manifest import scan


def main() -> None:
    root, db = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = scan(root)
    engine = Engine(db)
    print("ready", flush=True)
    asyncio.run(Worker(engine, manifest.queues).run())


if __name__ == "__main__":
    main()
