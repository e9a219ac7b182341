"""Tests for squall.core.facts: the facts script and the parsing of its output."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from squall.core.facts import FACTS_SCRIPT, facts_script, parse

DEBIAN_OUTPUT = """\
os=debian
os_version=12
os_name=Debian GNU/Linux 12 (bookworm)
kernel=6.1.0-18-amd64
arch=x86_64
cpus=8
memory_kb=16378532
uptime=86400.57
boot_id=0f5c7a52-3c1e-4a59-9d1b-8f1d5f6b2a10
hostname=web-01
fqdn=web-01.example.com
ips=10.0.0.5 172.17.0.1 fe80::1c2d:3eff:fe4f:5a6b 2001:db8::5{space}
pkg=openssl ii  3.0.11-1~deb12u2
pkg=nginx rc  1.22.1-9
""".format(space=" ")  # hostname -I ends with a space

RHEL_OUTPUT = """\
os=rhel
os_version=9.3
os_name=Red Hat Enterprise Linux 9.3 (Plow)
kernel=5.14.0-362.8.1.el9_3.x86_64
arch=x86_64
cpus=4
memory_kb=7869440
uptime=120.00
boot_id=
hostname=db-01
fqdn=
ips=
pkg=openssl ii 3.0.7-24.el9
"""


def test_parse_debian_output() -> None:
    facts = parse(DEBIAN_OUTPUT, ["openssl", "nginx", "curl"])
    assert facts == {
        "os": "debian",
        "os_version": "12",
        "os_name": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-18-amd64",
        "arch": "x86_64",
        "boot_id": "0f5c7a52-3c1e-4a59-9d1b-8f1d5f6b2a10",
        "hostname": "web-01",
        "fqdn": "web-01.example.com",
        "cpus": 8,
        "memory_mb": 15994,
        "uptime_seconds": 86400,
        "ipv4": ["10.0.0.5", "172.17.0.1"],
        "ipv6": ["fe80::1c2d:3eff:fe4f:5a6b", "2001:db8::5"],
        # nginx was removed (dpkg "rc": config files only); curl is not installed.
        "packages": {"openssl": "3.0.11-1~deb12u2", "nginx": None, "curl": None},
    }


def test_parse_rpm_style_output() -> None:
    facts = parse(RHEL_OUTPUT, ["openssl"])
    assert facts["os"] == "rhel"
    assert facts["os_version"] == "9.3"
    assert facts["cpus"] == 4
    assert facts["memory_mb"] == 7685
    assert facts["uptime_seconds"] == 120
    assert facts["packages"] == {"openssl": "3.0.7-24.el9"}
    # Empty values are left out rather than stored as "".
    assert "boot_id" not in facts
    assert "fqdn" not in facts
    assert facts["ipv4"] == []
    assert facts["ipv6"] == []


def test_packages_key_only_when_asked_for() -> None:
    assert "packages" not in parse(DEBIAN_OUTPUT)


def test_package_lines_for_packages_not_asked_for_are_ignored() -> None:
    facts = parse("pkg=zsh ii  5.9-4\npkg=openssl ii  3.0.11\n", ["openssl"])
    assert facts["packages"] == {"openssl": "3.0.11"}


def test_package_line_without_version_is_not_installed() -> None:
    facts = parse("pkg=openssl ii\npkg=nginx un  \n", ["openssl", "nginx"])
    assert facts["packages"] == {"openssl": None, "nginx": None}


def test_values_may_contain_equals_signs() -> None:
    assert parse("os_name=A=B (x)\n")["os_name"] == "A=B (x)"


def test_unknown_and_malformed_lines_are_ignored() -> None:
    facts = parse("garbage\nsome_key=1\n=\n\ncpus=2\n")
    assert facts == {"cpus": 2, "ipv4": [], "ipv6": []}


@pytest.mark.parametrize("bad", ["", "many", "8 cores", "nan", "inf", "1e999", "-"])
def test_bad_numbers_are_ignored(bad: str) -> None:
    facts = parse(f"cpus={bad}\nmemory_kb={bad}\nuptime={bad}\nos=debian\n")
    assert "cpus" not in facts
    assert "memory_mb" not in facts
    assert "uptime_seconds" not in facts
    assert facts["os"] == "debian"


def test_numbers_written_as_floats_are_truncated() -> None:
    facts = parse("cpus=2.0\nmemory_kb=2047.9\nuptime=59.99\n")
    assert facts["cpus"] == 2
    assert facts["memory_mb"] == 1
    assert facts["uptime_seconds"] == 59


def test_empty_output() -> None:
    assert parse("") == {"ipv4": [], "ipv6": []}
    assert parse("", ["openssl"]) == {"ipv4": [], "ipv6": [], "packages": {"openssl": None}}


# -- facts_script ----------------------------------------------------------------------


def test_facts_script_without_packages_is_the_base_script() -> None:
    assert facts_script() == FACTS_SCRIPT
    assert facts_script([]) == FACTS_SCRIPT


@pytest.mark.parametrize(
    "bad",
    ["nginx; rm -rf /", "$(id)", "-rf", "a b", "", "pkg'", "`x`", "a|b", "../x", "*"],
)
def test_facts_script_rejects_bad_package_names(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        facts_script(["openssl", bad])
    assert f"not a package name: {bad}" in str(info.value)


def test_facts_script_names_every_bad_package() -> None:
    with pytest.raises(ValueError, match=r"not a package name: a b, \$x"):
        facts_script(["a b", "ok", "$x"])


@pytest.mark.parametrize("good", ["openssl", "libc6", "g++", "python3.11", "lib_x-1:2", "7zip"])
def test_facts_script_accepts_package_names(good: str) -> None:
    script = facts_script([good])
    assert script.startswith(FACTS_SCRIPT)
    assert shlex.quote(good) in script
    assert "dpkg-query" in script
    assert "rpm -q" in script


def test_facts_script_asks_both_package_managers_for_every_name() -> None:
    script = facts_script(["g++", "openssl"])
    extra = script[len(FACTS_SCRIPT) :]
    assert "\\n' g++ openssl 2>/dev/null" in extra
    assert extra.count("g++ openssl") == 2


# -- the real script, here --------------------------------------------------------------


def _run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=10, check=False
    )


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not Path("/proc/meminfo").exists(),
    reason="the facts script reads /proc",
)


@linux_only
def test_facts_script_runs_here() -> None:
    proc = _run(FACTS_SCRIPT)
    assert proc.returncode == 0, proc.stderr
    facts = parse(proc.stdout)
    if Path("/etc/os-release").exists():
        assert facts["os"]
    assert facts["kernel"]
    assert facts["arch"]
    assert facts["cpus"] >= 1
    assert facts["memory_mb"] > 0
    assert facts["uptime_seconds"] >= 0
    assert isinstance(facts["ipv4"], list)
    assert all(":" in ip for ip in facts["ipv6"])


@linux_only
@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg")
def test_facts_script_with_packages_runs_here() -> None:
    names = ["dpkg", "no-such-package-for-squall-tests"]
    proc = _run(facts_script(names))
    assert proc.returncode == 0, proc.stderr
    facts = parse(proc.stdout, names)
    assert facts["packages"]["dpkg"]  # dpkg-query comes with dpkg
    assert facts["packages"]["no-such-package-for-squall-tests"] is None
