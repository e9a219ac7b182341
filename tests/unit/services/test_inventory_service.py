from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from squall.services.inventory import (
    InventoryService,
    InventorySource,
    detect,
    from_settings_value,
    sources,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, *, bump: int = 0) -> Path:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    if bump:  # a distinct mtime even on filesystems with coarse timestamps
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))
    return path


def script(path: Path, body: str) -> Path:
    """An executable dynamic inventory written in Python."""
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body).lstrip("\n"))
    path.chmod(0o755)
    return path


LIST_WITH_META = """
    import json, sys
    if sys.argv[1] == "--list":
        print(json.dumps({
            "web": {"hosts": ["w1", "w2"], "vars": {"env": "prod"}},
            "_meta": {"hostvars": {"w1": {"ansible_host": "10.0.0.1"}}},
        }))
    else:
        sys.exit("no --host expected")
"""


# ---------------------------------------------------------------- detection


def test_detect(tmp_path):
    assert detect(write(tmp_path / "a.yaml", "hosts: {}")) == "yaml"
    assert detect(write(tmp_path / "a.YML", "hosts: {}")) == "yaml"
    assert detect(write(tmp_path / "a.json", "{}")) == "json"
    assert detect(write(tmp_path / "hosts", "[web]\nh\n")) == "ini"
    assert detect(write(tmp_path / "hosts.ini", "[web]\nh\n")) == "ini"
    assert detect(script(tmp_path / "ec2.py", LIST_WITH_META)) == "script"
    executable_yaml = write(tmp_path / "x.yaml", "hosts: {}")
    executable_yaml.chmod(0o755)
    assert detect(executable_yaml) == "yaml"


def test_directory_sources_sorted_without_hidden_or_leftovers(tmp_path):
    for name in ("b.ini", "a.yaml", ".hidden", "c.yaml~", "d.bak", "README.md", "e.yml"):
        write(tmp_path / name, "")
    (tmp_path / "group_vars").mkdir()
    assert sources(tmp_path) == [
        InventorySource(tmp_path / "a.yaml", "yaml"),
        InventorySource(tmp_path / "b.ini", "ini"),
        InventorySource(tmp_path / "e.yml", "yaml"),
    ]


def test_from_settings_value(monkeypatch):
    monkeypatch.setenv("HOME", "/home/ops")
    assert from_settings_value("/etc/squall/hosts.yaml:~/inv: :") == [
        Path("/etc/squall/hosts.yaml"),
        Path("/home/ops/inv"),
    ]
    assert from_settings_value("") == []


# ---------------------------------------------------------------- files


def test_loads_and_merges_two_sources(tmp_path):
    a = write(tmp_path / "a.yaml", "hosts:\n  h1: {address: 10.0.0.1}\n  h2: {}\n")
    b = write(tmp_path / "b.ini", "[db]\nh2\nh3 ansible_port=2200\n")
    inv = InventoryService([a, b]).get()
    assert list(inv.hosts) == ["h1", "h2", "h3"]
    assert inv.hosts["h3"].port == 2200
    assert inv.hosts["h2"].source == f"{a}:3"
    assert [str(p) for p in inv.problems] == [
        f"{b}:2: host h2 is already defined at {a}:3; ignored"
    ]
    assert inv.groups["db"].hosts == ("h2", "h3")


def test_directory_of_sources(tmp_path):
    write(tmp_path / "10-web.yaml", "hosts: {w1: {}}\n")
    write(tmp_path / "20-db", "[db]\nd1\n")
    inv = InventoryService([tmp_path]).get()
    assert list(inv.hosts) == ["w1", "d1"]


def test_ansible_yaml_file(tmp_path):
    f = write(
        tmp_path / "hosts.yml",
        """
        all:
          children:
            web:
              hosts:
                w1: {ansible_host: 10.0.0.9}
        """,
    )
    assert InventoryService([f]).get().hosts["w1"].address == "10.0.0.9"


def test_saved_list_json_file(tmp_path):
    f = tmp_path / "snapshot.json"
    f.write_text(json.dumps({"web": ["w1"], "_meta": {"hostvars": {"w1": {"ansible_port": 2}}}}))
    assert InventoryService([f]).get().hosts["w1"].port == 2
    f.write_text('{"web": [\n"w1",\n')
    inv = InventoryService([f]).get()
    assert inv.hosts == {}
    assert str(inv.problems[0]).startswith(f"{f}:3: invalid JSON")


def test_rereads_a_changed_file_at_most_once_a_second(tmp_path):
    clock = Clock()
    f = write(tmp_path / "inv.yaml", "hosts: {a: {}}\n")
    service = InventoryService([f], clock=clock)
    first = service.get()
    assert list(first.hosts) == ["a"]
    write(f, "hosts: {a: {}, b: {}}\n", bump=5)
    clock.now += 0.5
    assert service.get() is first  # not looked at yet
    clock.now += 0.6
    assert list(service.get().hosts) == ["a", "b"]


def test_unchanged_files_are_not_parsed_again(tmp_path, monkeypatch):
    clock = Clock()
    f = write(tmp_path / "inv.ini", "h\n")
    service = InventoryService([f], clock=clock)
    first = service.get()
    calls = []
    monkeypatch.setattr("squall.services.inventory.parse_ini", lambda *a: calls.append(a) or first)
    clock.now += 10
    assert service.get() is first
    assert calls == []
    assert service.reload() is not None
    assert len(calls) == 1


def test_broken_file_keeps_no_hosts_but_others_load(tmp_path):
    clock = Clock()
    good = write(tmp_path / "good.yaml", "hosts: {g: {}}\n")
    bad = write(tmp_path / "bad.yaml", "hosts:\n  b1: {}\n")
    service = InventoryService([good, bad], clock=clock)
    assert list(service.get().hosts) == ["g", "b1"]
    write(bad, "hosts:\n  b1: {}\n  b2: [oops\n", bump=5)
    clock.now += 2
    inv = service.get()
    assert list(inv.hosts) == ["g"]
    assert len(inv.problems) == 1
    assert inv.problems[0].source == f"{bad}:4"
    assert "invalid YAML" in inv.problems[0].message
    write(bad, "hosts:\n  b1: {}\n", bump=10)
    clock.now += 2
    assert list(service.get().hosts) == ["g", "b1"]
    assert service.get().problems == []


def test_ini_syntax_error_is_a_problem_with_line(tmp_path):
    f = write(tmp_path / "hosts", "[web]\nh\n[web:oops]\n")
    inv = InventoryService([f]).get()
    assert inv.hosts == {}
    assert inv.problems[0].source == f"{f}:3"


def test_missing_configured_path_is_a_problem(tmp_path):
    good = write(tmp_path / "good.yaml", "hosts: {g: {}}\n")
    missing = tmp_path / "nope.yaml"
    inv = InventoryService([missing, good]).get()
    assert list(inv.hosts) == ["g"]
    assert [str(p) for p in inv.problems] == [f"{missing}: inventory path does not exist"]


def test_unreadable_file_is_a_problem(tmp_path):
    f = tmp_path / "latin1.ini"
    f.write_bytes(b"h\xe9\n")
    inv = InventoryService([f]).get()
    assert inv.hosts == {}
    assert "not UTF-8" in inv.problems[0].message


def test_file_removed_from_directory_disappears(tmp_path):
    clock = Clock()
    write(tmp_path / "a.yaml", "hosts: {a: {}}\n")
    b = write(tmp_path / "b.yaml", "hosts: {b: {}}\n")
    service = InventoryService([tmp_path], clock=clock)
    assert list(service.get().hosts) == ["a", "b"]
    b.unlink()
    write(tmp_path / "c.yaml", "hosts: {c: {}}\n")
    clock.now += 2
    inv = service.get()
    assert list(inv.hosts) == ["a", "c"]
    assert inv.problems == []


def test_get_is_thread_safe(tmp_path):
    f = write(tmp_path / "inv.yaml", "hosts:\n  web[001:200]: {}\n")
    service = InventoryService([f])
    results = []

    def worker() -> None:
        for _ in range(20):
            results.append(len(service.reload().hosts))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 80


# ---------------------------------------------------------------- scripts


def test_script_with_meta(tmp_path):
    s = script(tmp_path / "inv.py", LIST_WITH_META)
    inv = InventoryService([s]).get()
    assert inv.problems == []
    assert inv.hosts["w1"].address == "10.0.0.1"
    assert inv.hosts["w2"].facts == {"env": "prod"}
    assert inv.hosts["w1"].source == str(s)


def test_script_without_meta_is_asked_per_host(tmp_path):
    log = tmp_path / "calls"
    s = script(
        tmp_path / "inv.py",
        f"""
        import json, sys
        with open({str(log)!r}, "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\\n")
        if sys.argv[1] == "--list":
            print(json.dumps({{"web": ["w1", "w2"], "db": {{"hosts": ["w1"]}}}}))
        elif sys.argv[2] == "w1":
            print(json.dumps({{"ansible_host": "10.1.1.1", "rack": 7}}))
        """,
    )
    inv = InventoryService([s]).get()
    assert inv.problems == []
    assert inv.hosts["w1"].address == "10.1.1.1"
    assert inv.hosts["w1"].facts == {"rack": 7}
    assert inv.hosts["w2"].facts == {}  # printed nothing: no variables
    assert log.read_text().splitlines() == ["--list", "--host w1", "--host w2"]


def test_script_is_run_again_after_its_ttl(tmp_path):
    clock = Clock()
    counter = tmp_path / "n"
    counter.write_text("0")
    s = script(
        tmp_path / "inv.py",
        f"""
        import json, pathlib
        p = pathlib.Path({str(counter)!r})
        n = int(p.read_text()) + 1
        p.write_text(str(n))
        print(json.dumps({{"web": [f"run{{n}}"], "_meta": {{"hostvars": {{}}}}}}))
        """,
    )
    service = InventoryService([s], script_ttl=60, clock=clock)
    assert list(service.get().hosts) == ["run1"]
    clock.now += 30
    assert list(service.get().hosts) == ["run1"]
    clock.now += 31
    assert list(service.get().hosts) == ["run2"]
    assert list(service.reload().hosts) == ["run3"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "import sys\nprint('working', file=sys.stderr)\n"
            "sys.exit('ERROR: no credentials for the cloud API')\n",
            "inventory script --list: exited with status 1: "
            "ERROR: no credentials for the cloud API",
        ),
        (
            "import sys\nprint('{not json')\nprint('warning: slow', file=sys.stderr)\n",
            "inventory script --list: printed invalid JSON "
            "(Expecting property name enclosed in double quotes, line 1): warning: slow",
        ),
        ("pass\n", "inventory script --list: printed nothing"),
    ],
)
def test_failing_script_is_a_problem(tmp_path, body, expected):
    good = write(tmp_path / "good.yaml", "hosts: {g: {}}\n")
    s = script(tmp_path / "inv.py", body)
    inv = InventoryService([s, good]).get()
    assert list(inv.hosts) == ["g"]
    assert [str(p) for p in inv.problems] == [f"{s}: {expected}"]


def test_script_printing_a_list_is_a_problem(tmp_path):
    s = script(tmp_path / "inv.py", "print('[1, 2]')\n")
    inv = InventoryService([s]).get()
    assert inv.problems[0].message == "expected a JSON object of groups, got list"


def test_failing_host_call_fails_the_script(tmp_path):
    s = script(
        tmp_path / "inv.py",
        """
        import json, sys
        if sys.argv[1] == "--list":
            print(json.dumps({"web": ["w1"]}))
        else:
            sys.exit("lookup failed for " + sys.argv[2])
        """,
    )
    inv = InventoryService([s]).get()
    assert inv.hosts == {}
    assert [str(p) for p in inv.problems] == [
        f"{s}: inventory script --host w1: exited with status 1: lookup failed for w1"
    ]


def test_script_timeout(tmp_path):
    s = script(
        tmp_path / "inv.py",
        """
        import sys, time
        print("fetching hosts", file=sys.stderr, flush=True)
        time.sleep(30)
        """,
    )
    inv = InventoryService([s], script_timeout=0.5).get()
    assert inv.hosts == {}
    assert [str(p) for p in inv.problems] == [
        f"{s}: inventory script --list: timed out after 0.5s: fetching hosts"
    ]
