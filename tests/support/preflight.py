"""Before the suite starts: name the Debian packages whose binaries the tests need and cannot find."""

import shutil
import sys

from tests.support.postgres import PostgresUnavailable, _find_bindir


def missing_packages() -> list[str]:
    missing = []
    try:
        _find_bindir()
    except PostgresUnavailable:
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    return missing


def main() -> int:
    missing = missing_packages()
    if missing:
        print(
            "The test suite starts real servers on loopback and needs these Debian packages:\n"
            f"    sudo apt-get update && sudo apt-get install -y {' '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
