"""Validating a rendered config with the real proxy binary, plus the checks the binaries skip.

Verified on Debian's HAProxy 2.6 and lighttpd 1.4.69 (shared/reference/proxies.md §1.7, §2.5):
``haproxy -c`` passes a config whose ``jwt_verify`` key file is missing (every token then fails
with -5 at run time), and ``lighttpd -tt`` passes missing or broken magnet scripts (they fail as 500s
at request time). So besides the binary's verdict, every referenced file must exist, every HAProxy
verification key must be SPKI ``BEGIN PUBLIC KEY`` PEM of the right type, and every Lua file must
compile with the Lua the proxy embeds (5.3 in HAProxy, 5.4 in mod_magnet).

The binaries run where the release will run: a deploy passes its transport's ``run``, so they check
the staged copy on the gateway's host with the proxy and Lua installed there. The reference and key
checks read the rendered files themselves, which are exactly the files staged.
"""

import posixpath
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from apps.gateways.rendered import RenderedConfig
from apps.gateways.transports.base import COMMAND_NOT_FOUND, CommandResult
from apps.gateways.transports.local import run_command

CHECK_TIMEOUT_SECONDS = 30
DEBIAN_PACKAGE = {
    "haproxy": "haproxy",
    "lighttpd": "lighttpd",
    "luac5.3": "lua5.3",
    "luac5.4": "lua5.4",
    "lua5.4": "lua5.4",
}
LUA_MODULE_PACKAGES = {"cjson": "lua-cjson", "openssl": "lua-luaossl"}
# run(argv, *, cwd, timeout) on the host the config is checked on: a transport's ``run``
Runner = Callable[..., CommandResult]


@dataclass(frozen=True)
class Problem:
    check: str  # binary | reference | key | lua
    message: str


@dataclass(frozen=True)
class ValidationResult:
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Target:
    """Where the rendered files were written, and how to run a program there."""

    directory: PurePosixPath
    run: Runner


def _run(target: _Target, command: list[str]) -> CommandResult | Problem:
    result = target.run(command, cwd=str(target.directory), timeout=CHECK_TIMEOUT_SECONDS)
    if result.returncode == COMMAND_NOT_FOUND:
        package = DEBIAN_PACKAGE.get(command[0], command[0])
        return Problem("binary", f"{command[0]} is not installed; on Debian: apt-get install {package}")
    return result


def _rendered_name(directory: PurePosixPath, reference: str) -> str | None:
    """The rendered file a reference names (relative to the config, or absolute under its
    directory); None if it points outside."""
    path = PurePosixPath(reference)
    if path.is_absolute():
        if not path.is_relative_to(directory):
            return None
        path = path.relative_to(directory)
    return posixpath.normpath(str(path))


def _missing(
    rendered: RenderedConfig, directory: PurePosixPath, references: set[str], source: str
) -> Iterator[Problem]:
    for reference in sorted(references - set(rendered.external_files)):
        name = _rendered_name(directory, reference)
        if name is None:
            yield Problem("reference", f"{source} refers to {reference}, outside the rendered files")
        elif name not in rendered.files:
            yield Problem("reference", f"{source} refers to {reference}, which was not rendered")


def _lua_modules(rendered: RenderedConfig, target: _Target, lua: str) -> Iterator[Problem]:
    """Every module the scripts require must load in the proxy's Lua (a missing one fails only at
    request time, as a 500 or as tokens that never verify)."""
    for module in rendered.lua_modules:
        result = _run(target, [lua, "-e", f"require({module!r})"])
        if isinstance(result, Problem):
            yield result
            return
        if result.returncode != 0:
            package = LUA_MODULE_PACKAGES.get(module.partition(".")[0], "")
            hint = f"; on Debian: apt-get install {package}" if package else ""
            yield Problem("lua", f"Lua module {module} does not load with {lua}{hint}")


def _lua(rendered: RenderedConfig, target: _Target, luac: str) -> Iterator[Problem]:
    for name in rendered.files:
        if name.endswith(".lua"):
            result = _run(target, [luac, "-p", name])
            if isinstance(result, Problem):
                yield result
                return
            if result.returncode != 0:
                yield Problem("lua", _compiler_message(rendered, name, (result.stderr or result.stdout).strip()))


def _compiler_message(rendered: RenderedConfig, name: str, message: str) -> str:
    # luac quotes the text near an error; a private (0600) file holds secrets, which must never reach
    # a deployment's messages or the audit log.
    if rendered.files[name].mode & 0o077 == 0:
        line = message.split(":")[2] if message.count(":") >= 2 else "?"
        return f"{name} does not compile (line {line.strip()}); the compiler's text is withheld: the file holds secrets"
    return message


# HAProxy ---------------------------------------------------------------------------------------

_HAPROXY_FILE_REFERENCES = (
    re.compile(r"\s-f\s+(\S+)"),
    re.compile(r"\bmap(?:_\w+)?\(([^,)\s]+)"),
    re.compile(r"\bjwt_verify\(\s*\w+\s*,\s*\"([^\"]+)\"\s*\)"),
    re.compile(r"^\s*lua-load\s+(\S+)", re.M),
    re.compile(r"\b(?:crt|ca-file|crl-file)\s+(?!@system-ca\b)(\S+)"),  # @system-ca: the OS trust store
    re.compile(r"^\s*errorfile\s+\d+\s+(\S+)", re.M),
)
_HAPROXY_VERIFY_KEY = re.compile(r"\bjwt_verify\(\s*(RS|ES|PS)(\d+)\s*,\s*\"([^\"]+)\"\s*\)")
_KEY_TYPES = {"RS": rsa.RSAPublicKey, "PS": rsa.RSAPublicKey, "ES": ec.EllipticCurvePublicKey}


def _haproxy_binary(rendered: RenderedConfig, target: _Target) -> Iterator[Problem]:
    result = _run(target, ["haproxy", "-c", "-f", rendered.main])
    if isinstance(result, Problem):
        yield result
        return
    # rc 0 can still carry warnings (ignored keywords, dubious ACLs): a rendered config must have none.
    noteworthy = [line for line in result.stderr.splitlines() if "[ALERT]" in line or "[WARNING]" in line]
    if result.returncode != 0 or noteworthy:
        yield Problem(
            "binary", "\n".join(noteworthy) or result.stderr.strip() or f"haproxy -c exit {result.returncode}"
        )


def _haproxy_keys(rendered: RenderedConfig, text: str, directory: PurePosixPath) -> Iterator[Problem]:
    for family, bits, reference in _HAPROXY_VERIFY_KEY.findall(text):
        name = _rendered_name(directory, reference)
        if name not in rendered.files:
            continue  # reported as a missing reference
        pem = rendered.files[name].content
        if not pem.lstrip().startswith(b"-----BEGIN PUBLIC KEY-----"):
            yield Problem("key", f"{reference}: jwt_verify needs SPKI 'BEGIN PUBLIC KEY' PEM (a certificate gives -5)")
            continue
        try:
            key = load_pem_public_key(pem)
        except ValueError as error:
            yield Problem("key", f"{reference}: not a readable public key ({error})")
            continue
        if not isinstance(key, _KEY_TYPES[family]):
            held = (
                "an RSA"
                if isinstance(key, rsa.RSAPublicKey)
                else "an EC"
                if isinstance(key, ec.EllipticCurvePublicKey)
                else "a"
            )
            yield Problem("key", f"{reference}: {held} key cannot verify {family}{bits} signatures")


def _check_haproxy(rendered: RenderedConfig, target: _Target) -> Iterator[Problem]:
    yield from _haproxy_binary(rendered, target)
    for name, file in rendered.files.items():
        if name.endswith(".cfg"):
            text = file.content.decode()
            references = {match for pattern in _HAPROXY_FILE_REFERENCES for match in pattern.findall(text)}
            yield from _missing(rendered, target.directory, references, name)
            yield from _haproxy_keys(rendered, text, target.directory)
    yield from _lua(rendered, target, "luac5.3")


# lighttpd --------------------------------------------------------------------------------------

_LIGHTTPD_SCRIPT_LIST = re.compile(r"^\s*magnet\.attract-[\w-]+-to\s*=\s*\(([^)]*)\)", re.M)
_LIGHTTPD_FILE_SETTING = re.compile(r"^\s*ssl\.(?:pemfile|privkey|ca-file)\s*=\s*\"([^\"]+)\"", re.M)
_QUOTED = re.compile(r"\"([^\"]+)\"")


def _check_lighttpd(rendered: RenderedConfig, target: _Target) -> Iterator[Problem]:
    result = _run(target, ["lighttpd", "-tt", "-f", rendered.main])
    if isinstance(result, Problem):
        yield result
        return
    output = (result.stdout + result.stderr).strip()
    # rc 0 also covers unknown config keys, which lighttpd only warns about and then ignores.
    if result.returncode != 0 or "WARNING" in output:
        yield Problem("binary", output or f"lighttpd -tt exit {result.returncode}")
        return
    # -p prints the parsed config with variables and includes expanded: the paths as lighttpd sees them.
    printed = _run(target, ["lighttpd", "-p", "-f", rendered.main]).stdout
    references = set(_LIGHTTPD_FILE_SETTING.findall(printed))
    for script_list in _LIGHTTPD_SCRIPT_LIST.findall(printed):
        references.update(_QUOTED.findall(script_list))
    yield from _missing(rendered, target.directory, references, rendered.main)
    yield from _lua(rendered, target, "luac5.4")
    yield from _lua_modules(rendered, target, "lua5.4")


_CHECKS = {"haproxy": _check_haproxy, "lighttpd": _check_lighttpd}


def validate(
    rendered: RenderedConfig, *, directory: str | Path | None = None, run: Runner = run_command
) -> ValidationResult:
    """Run every check on the files written to a temporary directory on this host, or, with
    ``directory``, on the copy already written there (a deploy's staged release, whose configs may
    name it absolutely), running the binaries with ``run`` (the transport's, for the gateway's
    host); problems name what failed."""
    if directory is not None:
        target = _Target(PurePosixPath(str(directory)), run)
        return ValidationResult(tuple(_CHECKS[rendered.kind](rendered, target)))
    with tempfile.TemporaryDirectory(prefix="policyhub-validate-") as workdir:
        written = Path(workdir).resolve()
        rendered.write_to(written)
        target = _Target(PurePosixPath(written), run_command)
        return ValidationResult(tuple(_CHECKS[rendered.kind](rendered, target)))
