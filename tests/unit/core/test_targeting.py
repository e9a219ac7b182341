"""Tests for squall.core.targeting: the expressions that select hosts."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from squall.core.inventory import Group, Host, Inventory
from squall.core.targeting import (
    All,
    And,
    Fact,
    Grain,
    Name,
    NameList,
    NameRegex,
    Node,
    Not,
    Or,
    Subnet,
    TargetError,
    describe,
    fact_names,
    parse,
    resolve,
    select,
)
from squall.core.targeting import Group as GroupNode
from squall.errors import InvalidInput

DEBIAN = "Debian GNU/Linux 12 (bookworm)"


def _host(name: str, address: str | None = None, **facts: Any) -> Host:
    return Host(name, address or name, facts=facts)


def _inventory() -> Inventory:
    hosts = [
        _host(
            "web-01",
            "10.0.1.1",
            role="web",
            env="prod",
            hagroup="a",
            cpus=8,
            memory_mb=16384,
            os="ubuntu",
            os_name="Ubuntu 22.04.3 LTS",
            virtual=True,
            ipv4=["10.0.1.1", "192.168.0.11"],
            packages={"nginx": "1.22.1-9", "openssl": "3.0.2"},
        ),
        _host(
            "web-02",
            "web-02.example.com",
            role="web",
            env="prod",
            hagroup="b",
            cpus="8.0",
            memory_mb=8192,
            os="Ubuntu",
            virtual="True",
            ipv4=["10.0.1.2"],
            packages={"nginx": "1.18.0"},
        ),
        _host(
            "web-03",
            role="web",
            env="staging",
            hagroup="c",
            cpus=4,
            memory_mb=4096,
            os="debian",
            os_name=DEBIAN,
            virtual=False,
            ipv6=["fd00::3"],
        ),
        _host(
            "db1",
            role="db",
            env="prod",
            hagroup="a",
            cpus=16,
            memory_mb=65536,
            os="debian",
            os_name=DEBIAN,
            virtual=False,
            ipv4="10.0.2.1",
            packages={"postgresql": "15.4"},
        ),
        _host(
            "db2",
            role="db",
            env="prod",
            hagroup="c",
            cpus=16,
            os="rhel",
            serial=12345678901234567890,
        ),
        _host("db10", role="db", cpus="many", tags=["blue", "green"], env=None),
        _host("cache-01", "2001:db8::5", role="cache", env="dev", cpus=2, **{"dc.rack": "r1"}),
        _host("bastion", "203.0.113.7", note="a=b c"),
    ]
    groups = [
        Group("webservers", hosts=("web-01", "web-02", "web-03")),
        Group("databases", hosts=("db1", "db2", "db10")),
        Group("backend", hosts=("cache-01",), children=("databases",)),
        Group("prod", hosts=("db1", "web-01")),
        Group("empty"),
    ]
    return Inventory({h.name: h for h in hosts}, {g.name: g for g in groups})


INVENTORY = _inventory()
EVERYONE = list(INVENTORY.hosts)


def names(expression: str, inventory: Inventory = INVENTORY) -> list[str]:
    return [h.name for h in select(expression, inventory)]


def error(expression: str, inventory: Inventory = INVENTORY) -> TargetError:
    with pytest.raises(TargetError) as caught:
        select(expression, inventory)
    return caught.value


def caret(expression: str, position: int) -> str:
    return f"\n  {expression}\n  {' ' * position}^"


# --- names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("web-01", ["web-01"]),
        ("web-*", ["web-01", "web-02", "web-03"]),
        ("db[12]", ["db1", "db2"]),
        ("db?", ["db1", "db2"]),
        ("*", EVERYONE),
        ("all", EVERYONE),
        ("WEB-01", []),  # names are case-sensitive
        ("nosuchhost", []),
        ("~^db\\d+$", ["db1", "db2", "db10"]),
        ("~b1", ["db1", "db10"]),  # a search, not a match
        ("/^web-0[12]/", ["web-01", "web-02"]),  # MCollective's identity regex
        ('"web-01"', ["web-01"]),
    ],
)
def test_names(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


def test_lists_take_names_and_globs() -> None:
    assert names("db10,web-0[13]") == ["web-01", "web-03", "db10"]
    assert names("L@bastion,db1") == ["db1", "bastion"]
    assert names("L@db1") == ["db1"]


def test_lists_reject_empty_items_and_groups() -> None:
    e = error("web-01,,db1")
    assert e.position == 7
    assert "empty name in a list" in e.message
    assert "join groups and regexes with 'or'" in error("web-01,@prod").message


# --- groups ----------------------------------------------------------------------


def test_groups_include_their_children() -> None:
    assert names("@webservers") == ["web-01", "web-02", "web-03"]
    assert names("@backend") == ["db1", "db2", "db10", "cache-01"]
    assert names("N@databases") == ["db1", "db2", "db10"]
    assert names("@all") == EVERYONE
    assert names("@empty") == []


def test_unknown_group_is_named_with_the_known_ones() -> None:
    e = error("role=web and @webserver")
    assert e.position == 13
    assert e.message == (
        "unknown group 'webserver'; known groups: backend, databases, empty, prod, webservers;"
        " did you mean 'webservers'?" + caret("role=web and @webserver", 13)
    )
    assert error("N@nope").message.startswith("unknown group 'nope'; known groups: backend,")


def test_unknown_group_in_an_inventory_without_groups() -> None:
    e = error("@web", Inventory({"a": _host("a")}))
    assert e.reason == "unknown group 'web'; the inventory defines no groups"


def test_unknown_group_in_a_long_list_is_truncated() -> None:
    many = {f"g{i:02}": Group(f"g{i:02}") for i in range(30)}
    reason = error("@nope", Inventory({}, many)).reason
    assert (
        reason
        == "unknown group 'nope'; known groups: "
        + ", ".join(f"g{i:02}" for i in range(20))
        + ", ... (10 more)"
    )


# --- facts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("hagroup=c", ["web-03", "db2"]),
        ("hagroup==c", ["web-03", "db2"]),
        ("env!=prod", ["web-03", "db10", "cache-01", "bastion"]),  # missing counts as not prod
        ("os~^ubuntu", ["web-01"]),  # case-sensitive
        ("os=~^ubuntu", ["web-01"]),
        ("os!~^ubuntu", ["web-02", "web-03", "db1", "db2", "db10", "cache-01", "bastion"]),
        ("os=/^deb/", ["web-03", "db1"]),  # MCollective: a value between slashes is a regex
        ("os=~/^deb/", ["web-03", "db1"]),
        ("os~/^deb/", ["web-03", "db1"]),
        ("os!=/^deb/", ["web-01", "web-02", "db2", "db10", "cache-01", "bastion"]),
        ("os=ubuntu", ["web-01"]),
        ("os=deb?an", ["web-03", "db1"]),  # globs in values, as Salt's G@
        ("os_name=Debian*", ["web-03", "db1"]),
        ("cpus>=8", ["web-01", "web-02", "db1", "db2"]),  # "8.0" is a number, "many" is not
        ("cpus=>8", ["web-01", "web-02", "db1", "db2"]),
        ("cpus>8", ["db1", "db2"]),
        ("cpus<8", ["web-03", "cache-01"]),
        ("cpus<=4", ["web-03", "cache-01"]),
        ("cpus=<4", ["web-03", "cache-01"]),
        ("memory_mb<4096", []),
        ("memory_mb<=4096", ["web-03"]),
        ("memory_mb>-1", ["web-01", "web-02", "web-03", "db1"]),  # missing facts never compare
        ("cpus>=1e1", ["db1", "db2"]),
    ],
)
def test_fact_comparisons(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


def test_numbers_compare_as_numbers() -> None:
    # A number fact equals a number however it is written; a text fact is text
    # (web-02 has cpus "8.0", a string): kernel=5.10 must not match "5.1".
    assert names("cpus=8") == ["web-01"]
    assert names("cpus=8.0") == ["web-01", "web-02"]
    assert names("cpus=+8") == ["web-01"]
    assert names("cpus!=8") == ["web-02", "web-03", "db1", "db2", "db10", "cache-01", "bastion"]
    # Exactly, even beyond a float's precision.
    assert names("serial=12345678901234567890") == ["db2"]
    assert names("serial=12345678901234567891") == []
    assert names("serial>12345678901234567889") == ["db2"]


def test_booleans_compare_case_insensitively() -> None:
    assert names("virtual=true") == ["web-01", "web-02"]
    assert names("virtual=TRUE") == ["web-01", "web-02"]
    assert names("virtual=False") == ["web-03", "db1"]
    assert names("virtual!=true") == ["web-03", "db1", "db2", "db10", "cache-01", "bastion"]
    assert names("virtual~^t") == ["web-01"]  # a boolean reads as true/false; "True" stays


def test_equality_is_otherwise_case_sensitive() -> None:
    assert names("os=Ubuntu") == ["web-02"]
    assert names("os=UBUNTU") == []


def test_list_facts_match_when_any_element_does() -> None:
    assert names("ipv4=10.0.1.1") == ["web-01"]
    assert names("ipv4=192.168.0.11") == ["web-01"]
    assert names("ipv4=10.0.2.1") == ["db1"]  # a single string is fine too
    assert names("tags=green") == ["db10"]
    assert names("tags~^bl") == ["db10"]
    assert names("tags=g*") == ["db10"]
    assert names("tags!=green and role=db") == ["db1", "db2"]
    assert names("ipv4!~^10\\.") == ["web-03", "db2", "db10", "cache-01", "bastion"]


def test_nested_facts() -> None:
    assert names("packages.nginx~^1\\.22") == ["web-01"]
    assert names("packages.nginx=1.18.0") == ["web-02"]
    assert names("packages.postgresql>=15") == ["db1"]
    assert names("packages.nginx!=1.18.0") == [n for n in EVERYONE if n != "web-02"]
    assert names("dc.rack=r1") == ["cache-01"]  # a key with a dot in it


def test_a_mapping_fact_compares_as_nothing() -> None:
    assert names("packages=x") == []
    assert names("packages~.") == []
    assert names("packages!=x") == EVERYONE


def test_missing_and_null_facts_match_only_negations() -> None:
    # db10 has env: null, bastion has no env at all.
    assert "db10" not in names("env=prod")
    assert names("role=db and env!=prod") == ["db10"]
    assert names("env!~.") == ["db10", "bastion"]
    assert names("env~.") == ["web-01", "web-02", "web-03", "db1", "db2", "cache-01"]
    assert names("role>=1") == []


def test_quoted_values() -> None:
    assert names(f'os_name="{DEBIAN}"') == ["web-03", "db1"]
    assert names(f"os_name='{DEBIAN}'") == ["web-03", "db1"]
    assert names('os_name="Debian GNU/Linux"*') == ["web-03", "db1"]  # globs still work
    assert names('note="a=b c"') == ["bastion"]
    assert names("note=a=b\"\"' c'") == ["bastion"]  # quotes can start mid-value
    assert names('note="a=b c" and "bastion"') == ["bastion"]


def test_quotes_hide_operators_and_delimiters() -> None:
    assert parse('path="/var/"') == Fact("path", "=", "/var/")
    assert parse('x="~y"') == Fact("x", "=", "~y")
    assert parse('"and"') == Name("and")
    assert parse('"all"') == Name("all")
    assert parse('"@web"') == Name("@web")
    assert parse('"a,b"') == Name("a,b")
    assert parse('"a=b"') == Name("a=b")


def test_escaped_quotes() -> None:
    assert parse(r'motd="say \"hi\""') == Fact("motd", "=", 'say "hi"')
    assert parse(r"motd='say \"hi\"'") == Fact("motd", "=", r"say \"hi\"")
    assert parse(r'os~"^\d+$"') == Fact("os", "~", r"^\d+$")  # no doubling for regexes


def test_unknown_fact_lists_the_known_ones() -> None:
    e = error("role=web and hagrop=c")
    assert e.position == 13
    known = sorted(fact_names(INVENTORY))
    assert e.message == (
        "unknown fact 'hagrop'; known facts: "
        + ", ".join(known)
        + "; did you mean 'hagroup'?"
        + caret("role=web and hagrop=c", 13)
    )
    assert error("packages.ngnix=1").reason.startswith("unknown fact 'packages.ngnix'; known")


def test_unknown_fact_in_a_long_list_is_truncated() -> None:
    facts = {f"f{i:02}": i for i in range(30)}
    e = error("nope=1", Inventory({"a": Host("a", "a", facts=facts)}))
    assert (
        e.reason
        == "unknown fact 'nope'; known facts: "
        + ", ".join(f"f{i:02}" for i in range(20))
        + ", ... (10 more)"
    )
    facts["uptime_seconds"] = 1
    e = error("uptime_second>1", Inventory({"a": Host("a", "a", facts=facts)}))
    assert e.reason.endswith(", ... (11 more); did you mean 'uptime_seconds'?")


def test_a_fact_some_host_has_is_known() -> None:
    assert names("serial=1") == []
    assert names("note!=x") == EVERYONE
    assert names("note!=x note=*") == ["bastion"]
    assert names("env=prod", Inventory()) == []  # nothing to learn fact names from


def test_unknown_fact_when_no_host_has_facts() -> None:
    e = error("env=prod", Inventory({"a": _host("a")}))
    assert e.reason == "unknown fact 'env'; no host in the inventory has facts"


def test_fact_names() -> None:
    assert fact_names(INVENTORY) >= {
        "role",
        "packages",
        "packages.nginx",
        "packages.openssl",
        "packages.postgresql",
        "dc.rack",
        "ipv4",
        "ipv6",
    }
    assert "nginx" not in fact_names(INVENTORY)
    assert fact_names(Inventory()) == set()


# --- Salt ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("G@os:ubuntu", ["web-01", "web-02"]),  # case-insensitive, as in Salt
        ("G@os:UBUNTU", ["web-01", "web-02"]),
        ("G@os:deb*", ["web-03", "db1"]),
        ("G@cpus:16", ["db1", "db2"]),
        ("G@virtual:true", ["web-01", "web-02"]),
        ("G@packages:nginx:1.22*", ["web-01"]),
        ("G@packages:postgresql", ["db1"]),  # a mapping matches on its keys
        ("G@ipv4:10.0.1.*", ["web-01", "web-02"]),
        ("G@tags:blue", ["db10"]),
        ("G@dc.rack:r1", ["cache-01"]),
        ("G@packages.nginx:1.22*", ["web-01"]),  # dots work as in other terms
        ("G@ipv6:fd00::3", ["web-03"]),  # the value keeps its colons
        ("P@os:ub", ["web-01", "web-02"]),  # anchored at the start, as in Salt
        ("P@os:untu", []),
        ("P@os:(ubuntu|rhel)$", ["web-01", "web-02", "db2"]),
        ("P@packages:nginx:1\\.(18|22)", ["web-01", "web-02"]),
        ("E@db", ["db1", "db2", "db10"]),
        ("E@b1", []),  # E@ is anchored, ~ is not
        ("E@web-0[12]$", ["web-01", "web-02"]),
        ("L@web-01,db2", ["web-01", "db2"]),
        ("N@prod", ["web-01", "db1"]),
        ("S@10.0.0.0/16", ["web-01", "web-02", "db1"]),  # address, ipv4 list, ipv4 string
        ("S@192.168.0.0/24", ["web-01"]),
        ("S@10.0.2.1", ["db1"]),
        ("S@203.0.113.7", ["bastion"]),
        ("S@fd00::/8", ["web-03"]),
        ("S@2001:db8::/32", ["cache-01"]),
        ("S@0.0.0.0/0", ["web-01", "web-02", "db1", "bastion"]),
        ("G@os:ubuntu and not S@10.0.1.2", ["web-01"]),
    ],
)
def test_salt_prefixes(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


def test_salt_unsupported_prefixes() -> None:
    e = error("role=web or I@role:web")
    assert e.position == 12
    assert e.reason == (
        "syntax error at position 12: unsupported prefix 'I@'; "
        "supported prefixes: E@, G@, L@, N@, P@, S@"
    )
    for prefix in ("J@a:b", "R@%web", "C@x"):
        assert "unsupported prefix" in error(prefix).message


def test_salt_errors() -> None:
    assert (
        error("G@os").reason == "syntax error at position 2: G@ needs fact:value, e.g. G@os:ubuntu"
    )
    assert error("S@10.0.0.300").position == 2
    assert error("P@os:(x").reason == (
        "invalid regex at position 5: missing ), unterminated subpattern"
    )
    assert error("G@nosuch:x").reason.startswith("unknown fact 'nosuch'; known facts:")
    assert error("G@").reason == "syntax error at position 2: expected something after 'G@'"


# --- operators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("role=web and env=prod", ["web-01", "web-02"]),
        ("role=web AND env=prod", ["web-01", "web-02"]),
        ("role=web && env=prod", ["web-01", "web-02"]),
        ("role=web&&env=prod", ["web-01", "web-02"]),
        ("role=web env=prod", ["web-01", "web-02"]),  # MCollective -W: side by side is and
        ("role=cache or role=db", ["db1", "db2", "db10", "cache-01"]),
        ("role=cache Or role=db", ["db1", "db2", "db10", "cache-01"]),
        ("role=cache || role=db", ["db1", "db2", "db10", "cache-01"]),
        ("not role", EVERYONE),  # a bare word is a host name; no host is called role
        ("not @webservers", ["db1", "db2", "db10", "cache-01", "bastion"]),
        ("NOT @webservers and not @databases", ["cache-01", "bastion"]),
        ("!@webservers", ["db1", "db2", "db10", "cache-01", "bastion"]),
        ("! @webservers !@databases", ["cache-01", "bastion"]),
        ("not not web-01", ["web-01"]),
        ("!!web-01", ["web-01"]),
        ("not(role=web or role=db)", ["cache-01", "bastion"]),
        ("!(role=web||role=db)", ["cache-01", "bastion"]),
        ("(role=web)", ["web-01", "web-02", "web-03"]),
        ("((role=web))and(env=prod)", ["web-01", "web-02"]),
        ("  role=web\n\tand env=prod  ", ["web-01", "web-02"]),
    ],
)
def test_operators(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


def test_precedence_not_and_or() -> None:
    # or is loosest: role=cache or (role=web and env=staging)
    assert names("role=cache or role=web and env=staging") == ["web-03", "cache-01"]
    assert names("(role=cache or role=web) and env=staging") == ["web-03"]
    # not binds to the next term only
    assert names("not role=web and cpus>=8") == ["db1", "db2"]
    assert names("not (role=web and cpus>=8)") == [
        "web-03",
        "db1",
        "db2",
        "db10",
        "cache-01",
        "bastion",
    ]
    # implicit and binds like and
    assert names("role=cache or role=web env=staging") == ["web-03", "cache-01"]
    assert parse("a or b c") == Or((Name("a"), And((Name("b"), Name("c")))))
    assert parse("a || b && !c") == Or((Name("a"), And((Name("b"), Not(Name("c"))))))


def test_parentheses_in_regexes_belong_to_the_term() -> None:
    assert names("~^(db|cache)") == ["db1", "db2", "db10", "cache-01"]
    assert names("(os~^(ubuntu|rhel)$)") == ["web-01", "db2"]
    assert names("(role=db and ~^d(b1))") == ["db1", "db10"]


def test_regexes_are_compiled_once() -> None:
    node = parse("os~^ubuntu and ~^web")
    assert isinstance(node, And)
    first, second = node.operands
    assert isinstance(first, Fact)
    assert isinstance(second, NameRegex)
    assert first._regex is not None and first._regex.pattern == "^ubuntu"
    assert second._regex.pattern == "^web"
    assert names("os~^ubuntu and ~^web") == ["web-01"]


# --- results --------------------------------------------------------------------------


def test_results_follow_the_inventory_order() -> None:
    assert names("db1 or web-01") == ["web-01", "db1"]
    assert names("@prod") == ["web-01", "db1"]  # the group lists db1 first
    assert names("bastion,cache-01,web-01") == ["web-01", "cache-01", "bastion"]
    assert names("not web-01 or web-01") == EVERYONE


def test_select_returns_the_inventorys_hosts() -> None:
    assert select("web-01", INVENTORY)[0] is INVENTORY.hosts["web-01"]


def test_select_accepts_a_parsed_expression() -> None:
    node = parse("role=web and not hagroup=b")
    assert [h.name for h in select(node, INVENTORY)] == ["web-01", "web-03"]
    assert [h.name for h in select(node, _inventory())] == ["web-01", "web-03"]
    e = error_for_node(parse("@nosuch or role=web"))
    assert e.position is None  # there is no text to point into
    assert e.expression == "@nosuch or role=web"


def error_for_node(node: Any) -> TargetError:
    with pytest.raises(TargetError) as caught:
        select(node, INVENTORY)
    return caught.value


def test_resolve_refuses_an_empty_result() -> None:
    assert [h.name for h in resolve("db*", INVENTORY)] == ["db1", "db2", "db10"]
    with pytest.raises(TargetError) as caught:
        resolve("role=web and env=dev", INVENTORY)
    assert caught.value.message == (
        "target 'role=web and env=dev' matches no host (8 hosts in the inventory)"
    )
    assert caught.value.position is None
    with pytest.raises(TargetError, match=r"\(1 host in the inventory\)"):
        resolve("b", Inventory({"a": _host("a")}))
    with pytest.raises(TargetError, match=r"matches no host \(0 hosts"):
        resolve("all", Inventory())
    with pytest.raises(TargetError, match="unknown group"):
        resolve("@nope", INVENTORY)


# --- syntax errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "position", "problem"),
    [
        ("role=web and", 12, "syntax error at position 12: expected a term after 'and'"),
        ("role=web &&", 11, "syntax error at position 11: expected a term after '&&'"),
        ("a and or b", 6, "syntax error at position 6: expected a term after 'and', found 'or'"),
        ("a OR )", 5, "syntax error at position 5: expected a term after 'OR', found ')'"),
        ("not", 3, "syntax error at position 3: expected a term after 'not'"),
        ("a !", 3, "syntax error at position 3: expected a term after '!'"),
        ("or a", 0, "syntax error at position 0: expected a term, found 'or'"),
        ("()", 1, "syntax error at position 1: expected a term after '(', found ')'"),
        ("(a or b", 7, "syntax error at position 7: expected ')' to close the '(' at position 0"),
        ("a or b)", 6, "syntax error at position 6: ')' without a matching '('"),
        ("", 0, "syntax error at position 0: the expression is empty"),
        ("   ", 0, "syntax error at position 0: the expression is empty"),
        ('os_name="Debian', 8, 'syntax error at position 8: unclosed quote "'),
        ('a ""', 2, "syntax error at position 2: empty term"),
        (
            "cpus>=eight",
            6,
            "syntax error at position 6: expected a number after '>=', found 'eight'",
        ),
        ("cpus>", 5, "syntax error at position 5: expected a value after '>'"),
        ("env=", 4, "syntax error at position 4: expected a value after '='"),
        ("=prod", 0, "syntax error at position 0: expected a fact name before '='"),
        ("web-*=x", 0, "syntax error at position 0: invalid fact name 'web-*'"),
        ("a.=x", 0, "syntax error at position 0: invalid fact name 'a.'"),
        ("@", 1, "syntax error at position 1: expected a group name after '@'"),
        ("~", 1, "syntax error at position 1: expected a regex"),
        (
            "a and os~^(ubuntu",
            10,
            "invalid regex at position 10: missing ), unterminated subpattern",
        ),
        ("os=/(/", 4, "invalid regex at position 4: missing ), unterminated subpattern"),
        ('os~"a b("', 7, "invalid regex at position 7: missing ), unterminated subpattern"),
        ("E@[", 2, "invalid regex at position 2: unterminated character set"),
    ],
)
def test_syntax_errors(expression: str, position: int, problem: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse(expression)
    e = caught.value
    assert e.position == position
    assert e.expression == expression
    assert e.reason == problem
    assert e.message == problem + caret(expression, position)
    assert e.to_dict() == {"faultstring": e.message, "position": position}


def test_the_caret_stays_under_its_character_across_tabs_and_newlines() -> None:
    with pytest.raises(TargetError) as caught:
        parse("a and\n\tb and")
    assert caught.value.message.endswith("\n  a and  b and\n              ^")


def test_target_error_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse("a and")
    assert caught.value.http_status == 400


def test_parse_errors_surface_from_select() -> None:
    assert error("role=web and").position == 12


# --- the AST and describe -----------------------------------------------------------------


def test_the_ast() -> None:
    assert parse("all") == All()
    assert parse("*") == All()
    assert parse("web-*") == Name("web-*")
    assert parse("a,b*") == NameList(("a", "b*"))
    assert parse("L@a,b*") == NameList(("a", "b*"))
    assert parse("~^db") == NameRegex("^db")
    assert parse("/^db/") == NameRegex("^db")
    assert parse("E@db") == NameRegex("db", anchored=True)
    assert parse("@web") == GroupNode("web")
    assert parse("N@web") == GroupNode("web")
    assert parse("country=/uk/") == Fact("country", "~", "uk")
    assert parse("cpus=>8") == Fact("cpus", ">=", "8")
    assert parse("G@os:ubuntu") == Grain("G", "os:ubuntu")
    assert parse("S@10.1.2.3/8") == Subnet(ipaddress.ip_network("10.0.0.0/8"))
    assert parse("a and (b and c)") == And((Name("a"), Name("b"), Name("c")))
    assert parse("a or (b or c)") == Or((Name("a"), Name("b"), Name("c")))


def test_nodes_are_immutable_and_ignore_positions() -> None:
    node = parse("role=web")
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.key = "x"  # type: ignore[misc, union-attr]
    assert parse("  role=web") == node
    assert isinstance(node, Fact) and node.pos == 0
    assert hash(parse("  role=web")) == hash(node)


@pytest.mark.parametrize(
    ("expression", "canonical"),
    [
        ("web-* AND NOT web-03", "web-* and not web-03"),
        ("@webservers env=prod", "@webservers and env=prod"),
        ("a || b && !c", "a or b and not c"),
        ("(a or b) and c", "(a or b) and c"),
        ("not (a and b)", "not (a and b)"),
        ("not (a or b)", "not (a or b)"),
        ("!!a", "not not a"),
        ("country=/uk/", "country~uk"),
        ("x==1", "x=1"),
        ("x=~a", "x~a"),
        ("x=<1", "x<=1"),
        ("x!=/a/", "x!~a"),
        ("*", "all"),
        ("/^db/", "~^db"),
        ("L@a", "L@a"),
        ("L@a,b", "a,b"),
        ("N@web", "@web"),
        (f"os_name='{DEBIAN}'", f'os_name="{DEBIAN}"'),
        ("motd='say \"hi\"'", "motd='say \"hi\"'"),
        ("os~^(a|b)$", "os~^(a|b)$"),
        ('os~"a\\)"', 'os~"a\\)"'),
        ("os~a\\(b\\)", "os~a\\(b\\)"),
        ('path="/var/"', 'path="/var/"'),
        ('x="~y"', 'x="~y"'),
        ('x=""', 'x=""'),
        ('"and"', '"and"'),
        ('"a b",c', '"a b",c'),
        ("S@10.0.0.1", "S@10.0.0.1"),
        ("S@10.0.0.1/8", "S@10.0.0.0/8"),
        ("G@os:ubuntu P@os:^ub E@db", "G@os:ubuntu and P@os:^ub and E@db"),
    ],
)
def test_describe(expression: str, canonical: str) -> None:
    node = parse(expression)
    assert describe(node) == canonical
    assert parse(canonical) == node


def test_describe_round_trips_odd_values() -> None:
    odd: list[Node] = [
        Name("has space"),
        Name("a,b"),
        Name("x=y"),
        Name("@at"),
        Name("all"),
        NameList(("a b", "all", "c*")),
        NameRegex("a b\\(", anchored=True),
        GroupNode("with space"),
        Fact("k", "=", "=x"),
        Fact("k", "=", ">x"),
        Fact("k", "!=", "=x"),
        Fact("k", "~", "/x/"),
        Fact("k", "=", "a&&b"),
        Fact("k", "=", 'it\'s "quoted"'),
        Grain("G", "os_name:debian gnu*"),
        Not(Or((Name("a"), And((Name("b"), Name("c")))))),
    ]
    for node in odd:
        assert parse(describe(node)) == node, describe(node)
