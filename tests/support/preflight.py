"""Before the suite starts: name the Debian packages whose binaries the tests need and cannot find."""

import os
import shutil
import sys

from tests.support.postgres import PostgresUnavailable, _find_bindir

# command on PATH -> the Debian package that provides it
COMMANDS = {
    "redis-server": "redis-server",
    "haproxy": "haproxy",
    "lighttpd": "lighttpd",
    "luac5.3": "lua5.3",  # compiles what HAProxy's Lua 5.3 will load
    "luac5.4": "lua5.4",  # compiles what lighttpd's mod_magnet (Lua 5.4) will load
}
# files -> the Debian package that provides them
FILES = {
    "/usr/lib/lighttpd/mod_magnet.so": "lighttpd-modules-lua",
    "/usr/share/lua/5.4/cjson": "lua-cjson",  # the lighttpd gate decodes token JSON with it
    "/usr/share/lua/5.4/openssl": "lua-luaossl",  # and verifies RS256/ES256 tokens with it
    "/usr/sbin/sshd": "openssh-server",  # the ssh deploy transport's tests deploy through a real sshd
}


def missing_packages() -> list[str]:
    missing = []
    try:
        _find_bindir()
    except PostgresUnavailable:
        missing.append("postgresql")
    missing += [package for command, package in COMMANDS.items() if not shutil.which(command)]
    missing += [package for path, package in FILES.items() if not os.path.exists(path)]
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
