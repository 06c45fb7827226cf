"""`python -m syncd.healthcheck`: the container's HEALTHCHECK. Exit 0 when the daemon's
`/healthz` answers 200, 1 otherwise (503, refused, timed out), with one line saying why.

Docker runs it every interval inside the container, so it imports only the standard library
(no pydantic, no client libraries) and starts in a few tens of milliseconds. The port comes
from `SYNCD_SERVER__PORT`, else `[server] port` in the config named by `SYNCD_CONFIG` (default
`./config.toml`), else 9464; a `${VAR}` reference in the file is resolved from the environment.
The daemon binds 0.0.0.0, so 127.0.0.1 reaches it from inside the container.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from syncd.config_checks import cut, escaped, parse_toml, quoted, read_small_file

DEFAULT_PORT = 9464
TIMEOUT = 5.0


def port(environ: Mapping[str, str]) -> int:
    """The daemon's port, looked up as the daemon's own config loader would find it; a
    ValueError naming where it was set when it is not a port the probe can reach."""
    path = environ.get("SYNCD_CONFIG", "config.toml")
    text, where = environ.get("SYNCD_SERVER__PORT"), "environment SYNCD_SERVER__PORT"
    if not text:
        text, where = _config_port(Path(path), environ), f"{escaped(path)} [server] port"
    if text is None or text == "":
        return DEFAULT_PORT
    # Six digits at most: a longer number is no port, and int() of thousands of digits fails.
    number = int(text) if re.fullmatch(r"\s*[+]?\d{1,6}\s*", text) else -1
    if number == 0:
        raise ValueError(f"{where}: 0 lets the daemon take any free port, which this probe "
                         "cannot find; set a fixed port")
    if not 1 <= number <= 65535:
        raise ValueError(f"{where}: expected a port from 1 to 65535, got {quoted(cut(text))}")
    return number


def _config_port(path: Path, environ: Mapping[str, str]) -> str | None:
    try:
        # As the config is read (`syncd.config`): a byte-order mark allowed. Whatever else is
        # wrong with it (syntax, nesting, `server` not a table, a FIFO or device rather than a
        # file, a size no config has), the daemon says; here the default port stands.
        server = parse_toml(read_small_file(path).decode("utf-8-sig")).get("server")
    except (OSError, ValueError):  # FileRefused, TOMLDecodeError, UnparsableToml, decoding
        return None
    value = server.get("port") if isinstance(server, dict) else None
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)\}", lambda found: environ.get(found.group(1), ""), value)
    return None if value is None else str(value)


def check(url: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """(healthy, the line to print) for one GET of `url`."""
    # No proxy: an HTTP(S)_PROXY set for the CRMs must not carry a loopback probe away.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as answer:
            status, body = answer.status, answer.read(500).decode(errors="replace")
            return True, f"{url}: {status} {body}"
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode(errors="replace")
        return False, f"{url}: {exc.code} {body}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url}: no answer ({reason})"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        url = f"http://127.0.0.1:{port(environ)}/healthz"
    except ValueError as exc:
        print(f"syncd healthcheck: {exc}", file=sys.stderr)
        return 1
    healthy, line = check(url)
    print(" ".join(line.split()), file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
