"""Facts about a host, from the output of one small shell script.

:data:`FACTS_SCRIPT` prints ``key=value`` lines using only what every Linux
host has (``/proc``, ``/etc/os-release``, ``uname``, ``hostname``), and
package versions from dpkg or rpm. :func:`parse` turns that output into
typed facts, the names targeting uses::

    os=debian  os_version=12  os_name="Debian GNU/Linux 12 (bookworm)"
    kernel=6.1.0-18-amd64  arch=x86_64  cpus=8  memory_mb=15995
    uptime_seconds=86400  boot_id=...  hostname=web-01  fqdn=web-01.example.com
    ipv4=[10.0.0.5, ...]  ipv6=[...]  packages={openssl: 3.0.11-1~deb12u2, nginx: null}

A package that is not installed has version ``null``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

__all__ = ["FACTS_SCRIPT", "facts_script", "parse"]

_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_:-]*$")

FACTS_SCRIPT = r"""
. /etc/os-release 2>/dev/null
echo "os=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME"
echo "kernel=$(uname -r)"; echo "arch=$(uname -m)"
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
while read k v u; do [ "$k" = MemTotal: ] && echo "memory_kb=$v"; done </proc/meminfo
read up idle </proc/uptime; echo "uptime=$up"
echo "boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
echo "hostname=$(hostname 2>/dev/null || uname -n)"
echo "fqdn=$(hostname -f 2>/dev/null)"
echo "ips=$(hostname -I 2>/dev/null)"
"""


def facts_script(packages: Sequence[str] = ()) -> str:
    """The script, asking also for the versions of ``packages``."""
    bad = [p for p in packages if not _PACKAGE.match(p)]
    if bad:
        raise ValueError(f"not a package name: {', '.join(bad)}")
    if not packages:
        return FACTS_SCRIPT
    names = " ".join(shlex.quote(p) for p in packages)
    return FACTS_SCRIPT + (
        "if command -v dpkg-query >/dev/null 2>&1; then\n"
        f"  dpkg-query -W -f='pkg=${{Package}} ${{db:Status-Abbrev}} ${{Version}}\\n' {names}"
        " 2>/dev/null\n"
        "elif command -v rpm >/dev/null 2>&1; then\n"
        f"  rpm -q --qf 'pkg=%{{NAME}} ii %{{VERSION}}-%{{RELEASE}}\\n' {names} 2>/dev/null"
        " | grep ^pkg=\n"
        "fi\n"
        "true\n"
    )


def _number(text: str) -> int | None:
    try:
        return int(float(text))
    except (ValueError, OverflowError):  # OverflowError: "inf", "1e999"
        return None


def parse(output: str, packages: Sequence[str] = ()) -> dict[str, Any]:
    """Typed facts from the script's output (unknown lines are ignored)."""
    raw: dict[str, str] = {}
    versions: dict[str, str | None] = dict.fromkeys(packages)
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "pkg":
            name, _, rest = value.partition(" ")
            status, _, version = rest.partition(" ")
            version = version.strip()
            # dpkg lists removed packages too ("rc"): only "ii" is installed.
            if name in versions and status.startswith("i") and version:
                versions[name] = version
            continue
        raw[key] = value.strip()
    facts: dict[str, Any] = {}
    for key in ("os", "os_version", "os_name", "kernel", "arch", "boot_id", "hostname", "fqdn"):
        if raw.get(key):
            facts[key] = raw[key]
    cpus = _number(raw.get("cpus", ""))
    if cpus is not None:
        facts["cpus"] = cpus
    memory = _number(raw.get("memory_kb", ""))
    if memory is not None:
        facts["memory_mb"] = memory // 1024
    uptime = _number(raw.get("uptime", ""))
    if uptime is not None:
        facts["uptime_seconds"] = uptime
    ips = raw.get("ips", "").split()
    facts["ipv4"] = [ip for ip in ips if ":" not in ip]
    facts["ipv6"] = [ip for ip in ips if ":" in ip]
    if packages:
        facts["packages"] = versions
    return facts
