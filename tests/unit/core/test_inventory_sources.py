from __future__ import annotations

import textwrap

import pytest

from squall.core.inventory import InventoryError, merge
from squall.core.inventory_sources import (
    MAX_RANGE,
    dynamic_host_names,
    expand_range,
    parse_ansible_yaml,
    parse_dynamic,
    parse_ini,
    parse_yaml,
)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def messages(inv) -> list[str]:
    return [str(p) for p in inv.problems]


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("web", ["web"]),
        ("web[1:3]", ["web1", "web2", "web3"]),
        ("web[01:03]", ["web01", "web02", "web03"]),
        ("web[08:11].example.com", [f"web{n}.example.com" for n in ("08", "09", "10", "11")]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("x[1:10:3]", ["x1", "x4", "x7", "x10"]),
        ("x[a:e:2]", ["xa", "xc", "xe"]),
        ("h[:2]", ["h0", "h1", "h2"]),
        ("r[1:2]-n[a:b]", ["r1-na", "r1-nb", "r2-na", "r2-nb"]),
        ("[1:2]x", ["1x", "2x"]),
        ("web[001:100]", [f"web{n:03d}" for n in range(1, 101)]),
        ("s[0:1]", ["s0", "s1"]),
    ],
)
def test_expand_range(pattern, names):
    assert expand_range(pattern) == names


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("web[1:3", "'[' without ']'"),
        ("web1:3]", "']' without '['"),
        ("web[3:1]", "begin is greater than end"),
        ("web[c:a]", "begin is after end"),
        ("web[1]", "[begin:end] or [begin:end:step]"),
        ("web[1:2:3:4]", "[begin:end] or [begin:end:step]"),
        ("web[1:]", "no end"),
        ("web[1:5:0]", "step must be a whole number above 0"),
        ("web[1:5:x]", "step must be a whole number above 0"),
        ("web[01:100]", "as many digits"),
        ("web[1:c]", "both be numbers or both be single letters"),
        ("web[aa:zz]", "both be numbers or both be single letters"),
        (f"web[1:{MAX_RANGE * 10}]", "more than"),
        ("a[1:1000]b[1:1000]", "more than"),
    ],
)
def test_expand_range_rejects(pattern, reason):
    with pytest.raises(ValueError) as info:
        expand_range(pattern)
    assert reason in str(info.value)
    assert pattern.split("[")[0] in str(info.value)


# ---------------------------------------------------------------- Squall YAML

EXAMPLE = dedent(
    """
    defaults:
      user: deploy
      key_file: ~/.ssh/fleet_ed25519
      facts: {dc: par1}
    hosts:
      web-01:
        address: 10.0.1.1
        facts: {role: web, hagroup: a}
      web-[02:04]:
        facts: {role: web}
      bastion:
        address: 203.0.113.7
        agent: false
      db-1:
        address: 10.0.2.1
        port: 2222
        user: postgres
        password: s3cret
        certificate: ~/.ssh/fleet_ed25519-cert.pub
        jump: bastion
        groups: [databases]
    groups:
      webservers:
        hosts: [web-01, "web-[02:04]"]
        vars: {env: prod, tier: front}
        children: [canary]
      canary:
        hosts: [web-01]
        vars: {env: canary}
      all:
        vars: {ntp: ntp.example.net, dc: ignored}
    """
)


def test_yaml_example():
    inv = parse_yaml(EXAMPLE, "fleet.yaml")
    assert inv.problems == []
    assert list(inv.hosts) == ["web-01", "web-02", "web-03", "web-04", "bastion", "db-1"]
    web1 = inv.hosts["web-01"]
    assert web1.address == "10.0.1.1"
    assert web1.user == "deploy"
    assert web1.key_file == "~/.ssh/fleet_ed25519"
    assert web1.port == 22
    assert web1.groups == ("canary", "webservers")
    # defaults.facts < all < parent < child < host
    assert web1.facts == {
        "dc": "ignored",
        "ntp": "ntp.example.net",
        "env": "canary",
        "tier": "front",
        "role": "web",
        "hagroup": "a",
    }
    assert web1.source == "fleet.yaml:6"
    web3 = inv.hosts["web-03"]
    assert web3.address == "web-03"
    assert web3.facts["env"] == "prod"
    assert web3.source == "fleet.yaml:9"
    db = inv.hosts["db-1"]
    assert (db.port, db.user, db.password, db.jump) == (2222, "postgres", "s3cret", "bastion")
    assert db.certificate == "~/.ssh/fleet_ed25519-cert.pub"
    assert db.to_dict()["password"] == "********"
    assert "s3cret" not in repr(db)
    assert inv.hosts["bastion"].agent is False
    assert inv.groups["webservers"].hosts == ("web-01", "web-02", "web-03", "web-04")
    assert inv.groups["webservers"].children == ("canary",)
    assert inv.groups["canary"].source == "fleet.yaml:27"
    assert inv.groups["databases"].hosts == ("db-1",)
    assert inv.members("webservers") == {"web-01", "web-02", "web-03", "web-04"}


def test_yaml_empty_and_null_documents():
    assert parse_yaml("", "a.yaml").hosts == {}
    assert parse_yaml("# nothing\n", "a.yaml").hosts == {}
    assert parse_yaml("hosts:\n", "a.yaml").hosts == {}


def test_yaml_host_without_mapping_takes_defaults():
    inv = parse_yaml("defaults: {user: ops, groups: [fleet]}\nhosts:\n  a:\n  b: {}\n", "s")
    assert inv.hosts["a"].user == "ops"
    assert inv.hosts["b"].groups == ("fleet",)
    assert inv.groups["fleet"].hosts == ("a", "b")


def test_yaml_malformed_names_source_and_line():
    text = "hosts:\n  a: {address: 1.2.3.4}\n  b: [unclosed\n"
    with pytest.raises(InventoryError) as info:
        parse_yaml(text, "bad.yaml")
    assert info.value.source == "bad.yaml"
    assert info.value.line == 4
    assert str(info.value).startswith("bad.yaml:4: invalid YAML")


def test_yaml_tab_indent_error_has_line():
    with pytest.raises(InventoryError) as info:
        parse_yaml("hosts:\n  a:\n\taddress: x\n", "t.yaml")
    assert info.value.line == 3


def test_yaml_top_level_must_be_a_mapping():
    with pytest.raises(InventoryError) as info:
        parse_yaml("\n- a\n- b\n", "l.yaml")
    assert info.value.line == 2
    assert "mapping" in info.value.reason


def test_yaml_hosts_section_must_be_a_mapping():
    with pytest.raises(InventoryError) as info:
        parse_yaml("hosts: [a, b]\n", "l.yaml")
    assert (info.value.line, info.value.reason) == (1, "hosts must be a mapping")


def test_yaml_unknown_keys_are_problems_but_host_loads():
    text = dedent(
        """
        hosts:
          db-1:
            address: 10.0.2.1
            prot: 2222
        extra: 1
        """
    )
    inv = parse_yaml(text, "u.yaml")
    assert "db-1" in inv.hosts
    found = messages(inv)
    assert found[0].startswith("u.yaml:4: host db-1: unknown key 'prot'")
    assert found[1].startswith("u.yaml:5: unknown top-level key 'extra'")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("port", "abc", "port must be a whole number from 1 to 65535, not 'abc'"),
        ("port", "0", "port must be a whole number from 1 to 65535"),
        ("port", "70000", "port must be a whole number"),
        ("port", "true", "port must be a whole number"),
        ("user", "[a]", "user must be a string"),
        ("agent", "maybe", "agent must be true or false"),
        ("groups", "web", "groups must be a list of group names"),
        ("facts", "[1]", "facts must be a mapping"),
        ("address", "''", "address must not be empty"),
    ],
)
def test_yaml_wrong_type_skips_host(field, value, expected):
    text = f"hosts:\n  ok: {{}}\n  bad:\n    {field}: {value}\n"
    inv = parse_yaml(text, "w.yaml")
    assert list(inv.hosts) == ["ok"]
    assert len(inv.problems) == 1
    assert inv.problems[0].source == "w.yaml:4"
    assert f"host bad: {expected}" in inv.problems[0].message


def test_yaml_accepts_port_as_digit_string_and_int_user():
    inv = parse_yaml("hosts:\n  a: {port: '2200', user: 1000, agent: 'no'}\n", "s")
    assert (inv.hosts["a"].port, inv.hosts["a"].user, inv.hosts["a"].agent) == (2200, "1000", False)


def test_yaml_wrong_default_makes_file_unusable():
    with pytest.raises(InventoryError) as info:
        parse_yaml("defaults:\n  user: deploy\n  port: many\nhosts:\n  a:\n", "d.yaml")
    assert info.value.line == 3
    assert "defaults: port must be" in info.value.reason


def test_yaml_defaults_cannot_set_address():
    inv = parse_yaml("defaults: {address: 1.1.1.1}\nhosts: {a: }\n", "d.yaml")
    assert inv.hosts["a"].address == "a"
    assert "unknown key 'address'" in messages(inv)[0]


def test_yaml_host_fields_override_defaults_groups_join_facts_merge():
    text = dedent(
        """
        defaults: {user: deploy, port: 2200, groups: [fleet], facts: {dc: a, os: linux}}
        hosts:
          x: {user: root, groups: [db], facts: {dc: b}}
        """
    )
    x = parse_yaml(text, "s").hosts["x"]
    assert (x.user, x.port) == ("root", 2200)
    assert x.groups == ("db", "fleet")
    assert x.facts == {"dc": "b", "os": "linux"}


def test_yaml_range_in_host_name_and_bad_range_is_a_problem():
    inv = parse_yaml("hosts:\n  n[1:2]: {port: 23}\n  m[3:1]: {}\n", "r.yaml")
    assert list(inv.hosts) == ["n1", "n2"]
    assert inv.hosts["n2"].port == 23
    assert messages(inv) == [
        "r.yaml:3: host m[3:1]: bad range [3:1]: begin is greater than end; skipped"
    ]


def test_yaml_host_defined_twice():
    inv = parse_yaml("hosts:\n  web[1:2]: {}\n  web2: {port: 99}\n", "d.yaml")
    assert inv.hosts["web2"].port == 22
    assert messages(inv) == ["d.yaml:3: host web2 is already defined at d.yaml:2; ignored"]


def test_yaml_group_creates_undefined_hosts_with_defaults():
    text = "defaults: {user: ops}\ngroups:\n  web:\n    hosts: [w1, 'w[2:3]']\n    vars: {env: x}\n"
    inv = parse_yaml(text, "g.yaml")
    assert list(inv.hosts) == ["w1", "w2", "w3"]
    assert inv.hosts["w2"].user == "ops"
    assert inv.hosts["w2"].facts == {"env": "x"}
    assert inv.hosts["w1"].source == "g.yaml:4"


def test_yaml_group_does_not_recreate_a_skipped_host():
    inv = parse_yaml("hosts:\n  a: {port: x}\ngroups:\n  g: {hosts: [a]}\n", "g.yaml")
    assert inv.hosts == {}
    assert inv.groups["g"].hosts == ()


def test_yaml_group_problems():
    text = dedent(
        """
        groups:
          a: {hosts: x}
          b: {vars: [1]}
          c: {children: {x: 1}}
          d: {color: red, hosts: [h]}
          e: [h]
          f:
        """
    )
    inv = parse_yaml(text, "g.yaml")
    assert messages(inv) == [
        "g.yaml:2: group a: hosts must be a list of host names; skipped",
        "g.yaml:3: group b: vars must be a mapping of names to values; skipped",
        "g.yaml:4: group c: children must be a list of group names; skipped",
        "g.yaml:5: group d: unknown key 'color' ignored (known: hosts, vars, children)",
        "g.yaml:6: group e: expected a mapping of hosts, vars and children; skipped",
    ]
    assert set(inv.groups) == {"d", "f"}
    assert list(inv.hosts) == ["h"]


def test_yaml_child_group_cycle_is_a_problem():
    text = "groups:\n  a: {children: [b]}\n  b: {children: [a]}\n"
    inv = parse_yaml(text, "c.yaml")
    assert inv.groups["a"].children == ("b",)
    assert inv.groups["b"].children == ()
    assert messages(inv) == ["c.yaml:3: group a cannot be a child of b: it contains it"]


def test_yaml_precedence_same_depth_by_name():
    text = dedent(
        """
        hosts:
          h: {groups: [zeta, alpha]}
        groups:
          alpha: {vars: {v: alpha, a: 1}}
          zeta: {vars: {v: zeta}}
        """
    )
    assert parse_yaml(text, "p").hosts["h"].facts == {"v": "zeta", "a": 1}


def test_yaml_deep_child_wins_over_parent():
    text = dedent(
        """
        hosts:
          h: {groups: [leaf]}
        groups:
          root: {vars: {v: root, r: 1}, children: [mid]}
          mid: {vars: {v: mid}, children: [leaf]}
          leaf: {vars: {v: leaf}}
          aaa: {vars: {v: aaa}, children: [leaf]}
        """
    )
    h = parse_yaml(text, "p").hosts["h"]
    assert h.facts == {"v": "leaf", "r": 1}
    assert h.groups == ("aaa", "leaf", "mid", "root")


def test_yaml_host_without_usable_address():
    inv = parse_yaml("hosts:\n  my host: {}\n  other host: {address: 10.0.0.1}\n", "a.yaml")
    assert list(inv.hosts) == ["other host"]
    assert messages(inv) == ["a.yaml:2: host 'my host' has no address; skipped"]


def test_yaml_dates_stay_text_and_names_keep_their_spelling():
    inv = parse_yaml("hosts:\n  10.0:\n    facts: {since: 2024-01-02, n: 1.10}\n", "s")
    host = inv.hosts["10.0"]
    assert host.facts == {"since": "2024-01-02", "n": 1.1}


def test_yaml_anchors_and_merge_keys():
    text = dedent(
        """
        hosts:
          a: &base {user: app, port: 2200}
          b:
            <<: *base
            port: 2201
        """
    )
    inv = parse_yaml(text, "m")
    assert (inv.hosts["b"].user, inv.hosts["b"].port) == ("app", 2201)


def test_yaml_python_tags_are_refused():
    with pytest.raises(InventoryError) as info:
        parse_yaml("hosts:\n  a:\n    facts: !!python/object:os.system {}\n", "x.yaml")
    assert info.value.line == 3


def test_yaml_vault_password_is_not_used():
    text = dedent(
        """
        hosts:
          a:
            password: !vault |
              $ANSIBLE_VAULT;1.1;AES256
              6162
        """
    )
    inv = parse_yaml(text, "v.yaml")
    assert inv.hosts == {}
    assert "password is encrypted with Ansible Vault" in messages(inv)[0]


# ---------------------------------------------------------------- Ansible YAML

ANSIBLE_YAML = dedent(
    """
    all:
      hosts:
        mail.example.com:
      vars:
        ntp: ntp.example.com
      children:
        webservers:
          hosts:
            foo.example.com:
            bar.example.com:
              ansible_host: 192.0.2.10
              ansible_port: 2222
            "www[01:02].example.com:2200":
              http_port: 8080
          vars:
            env: prod
        dbservers:
          hosts:
            one.example.com:
            two.example.com:
              ansible_user: postgres
              ansible_password: hunter2
          children:
            replicas:
              hosts:
                two.example.com:
              vars:
                role: replica
    """
)


def test_ansible_yaml_detected_by_parse_yaml():
    inv = parse_yaml(ANSIBLE_YAML, "hosts.yml")
    assert inv.problems == []
    assert set(inv.hosts) == {
        "mail.example.com",
        "foo.example.com",
        "bar.example.com",
        "www01.example.com",
        "www02.example.com",
        "one.example.com",
        "two.example.com",
    }
    bar = inv.hosts["bar.example.com"]
    assert (bar.address, bar.port) == ("192.0.2.10", 2222)
    assert bar.facts == {"ntp": "ntp.example.com", "env": "prod"}
    assert bar.source == "hosts.yml:10"
    www = inv.hosts["www02.example.com"]
    assert (www.port, www.facts["http_port"]) == (2200, 8080)
    two = inv.hosts["two.example.com"]
    assert (two.user, two.password) == ("postgres", "hunter2")
    assert "ansible_password" not in two.facts
    assert two.facts["role"] == "replica"
    assert two.groups == ("dbservers", "replicas")
    assert inv.hosts["mail.example.com"].groups == ("ungrouped",)
    assert inv.groups["all"].children == ("webservers", "dbservers", "ungrouped")
    assert inv.members("dbservers") == {"one.example.com", "two.example.com"}
    assert parse_ansible_yaml(ANSIBLE_YAML, "hosts.yml").hosts.keys() == inv.hosts.keys()


def test_ansible_yaml_problems():
    text = dedent(
        """
        all:
          children:
            web:
              hosts: [a, b]
            db:
              hosts:
                d1: [not, a, mapping]
                "d[3:1]":
                d2:
              colour: blue
        """
    )
    inv = parse_ansible_yaml(text, "h.yml")
    assert list(inv.hosts) == ["d2"]
    assert messages(inv) == [
        "h.yml:4: group web: hosts must be a mapping of host names to variables; ignored",
        "h.yml:7: host d1: its variables must be a mapping; skipped",
        "h.yml:8: host d[3:1]: bad range [3:1]: begin is greater than end; skipped",
        "h.yml:10: group db: unknown key 'colour' ignored (known: hosts, vars, children)",
    ]


# ---------------------------------------------------------------- INI

ANSIBLE_INI_EXAMPLE = dedent(
    """
    # Example 1
    [web]
    host1
    host2 ansible_port=222 # defined inline, interpreted as an integer

    [web:vars]
    http_port=8080 # all members of 'web' will inherit these
    myvar=23 # defined in a :vars section, interpreted as a string

    [web:children] # child groups will automatically add their hosts to parent group
    apache
    nginx

    [apache]
    tomcat1
    tomcat2 myvar=34 # host specific vars override group vars
    tomcat3 mysecret="'03#pa33w0rd'" # proper quoting to prevent value changes

    [nginx]
    jenkins1

    [nginx:vars]
    has_java = True # vars in child groups override same in parent

    [all:vars]
    has_java = False # 'all' is 'top' parent
    """
)


def test_ini_ansible_documented_example_1():
    inv = parse_ini(ANSIBLE_INI_EXAMPLE, "hosts")
    assert inv.problems == []
    assert list(inv.hosts) == ["host1", "host2", "tomcat1", "tomcat2", "tomcat3", "jenkins1"]
    assert inv.hosts["host2"].port == 222
    assert "ansible_port" not in inv.hosts["host2"].facts
    assert inv.hosts["host1"].facts == {"has_java": False, "http_port": 8080, "myvar": 23}
    assert inv.hosts["tomcat2"].facts["myvar"] == 34
    assert inv.hosts["tomcat3"].facts["mysecret"] == "03#pa33w0rd"
    assert inv.hosts["jenkins1"].facts["has_java"] is True
    assert inv.hosts["jenkins1"].groups == ("nginx", "web")
    assert inv.hosts["tomcat1"].source == "hosts:15"
    assert inv.groups["web"].children == ("apache", "nginx")
    assert inv.members("web") == {"host1", "host2", "tomcat1", "tomcat2", "tomcat3", "jenkins1"}
    assert set(inv.groups["all"].children) == {"web", "ungrouped"}


def test_ini_ansible_documented_example_2():
    text = dedent(
        """
        host1 # this is 'ungrouped'

        # both hosts have same IP but diff ports, also 'ungrouped'
        host2 ansible_host=127.0.0.1 ansible_port=44
        host3 ansible_host=127.0.0.1 ansible_port=45

        [g1]
        host4

        [g2]
        host4 # same host as above, but member of 2 groups, will inherit vars from both
              # inventory hostnames are unique
        """
    )
    inv = parse_ini(text, "hosts")
    assert inv.problems == []
    assert [(h.address, h.port) for h in inv.hosts.values()] == [
        ("host1", 22),
        ("127.0.0.1", 44),
        ("127.0.0.1", 45),
        ("host4", 22),
    ]
    assert inv.groups["ungrouped"].hosts == ("host1", "host2", "host3")
    assert inv.hosts["host4"].groups == ("g1", "g2")
    assert inv.hosts["host1"].groups == ("ungrouped",)


def test_ini_connection_variables():
    text = dedent(
        """
        [db]
        db1 ansible_host=10.0.0.5 ansible_user=pg ansible_ssh_pass=pw
        db1 ansible_ssh_private_key_file=~/.ssh/k
        db2 ansible_ssh_host=10.0.0.6 ansible_ssh_user=admin ansible_password='x y'
        db2 ansible_private_key_file=/k2
        db3 ansible_ssh_common_args='-o ProxyJump=ops@bastion:2222'
        db4 ansible_ssh_extra_args="-J jump1 -o StrictHostKeyChecking=no"
        db5 ansible_ssh_common_args='-o "ProxyCommand=ssh -W %h:%p -q ops@bastion"'
        db6 ansible_ssh_common_args='-o ProxyCommand="ssh -l ops -p 2200 bastion -W %h:%p"'
        db7 ansible_ssh_common_args='-oCertificateFile=~/.ssh/k-cert.pub -oProxyJump=none'
        db8 ansible_ssh_common_args='-o ProxyCommand="ssh bastion nc %h %p"'
        """
    )
    inv = parse_ini(text, "hosts")
    assert inv.problems == []
    db1, db2 = inv.hosts["db1"], inv.hosts["db2"]
    assert (db1.address, db1.user, db1.password, db1.key_file) == (
        "10.0.0.5",
        "pg",
        "pw",
        "~/.ssh/k",
    )
    assert (db2.address, db2.user, db2.password, db2.key_file) == (
        "10.0.0.6",
        "admin",
        "x y",
        "/k2",
    )
    assert db1.facts == {} and db2.facts == {}
    assert inv.hosts["db3"].jump == "ops@bastion:2222"
    assert inv.hosts["db4"].jump == "jump1"
    assert inv.hosts["db5"].jump == "ops@bastion"
    assert inv.hosts["db6"].jump == "ops@bastion:2200"
    assert (inv.hosts["db7"].jump, inv.hosts["db7"].certificate) == (None, "~/.ssh/k-cert.pub")
    assert inv.hosts["db8"].jump == "bastion"
    assert all(not h.facts for h in inv.hosts.values())


def test_ini_unsupported_proxies_skip_the_host():
    text = dedent(
        """
        a ansible_ssh_common_args='-o ProxyCommand="nc -X connect -x proxy:3128 %h %p"'
        b ansible_ssh_common_args='-J j1,j2'
        c
        """
    )
    inv = parse_ini(text, "hosts")
    assert list(inv.hosts) == ["c"]
    assert "ProxyCommand 'nc -X connect -x proxy:3128 %h %p' is not supported" in messages(inv)[0]
    assert messages(inv)[1] == (
        "hosts:2: host b: SSH arguments: a chain of jump hosts (j1,j2) is not supported; skipped"
    )


def test_ini_group_vars_precedence_and_connection_vars():
    text = dedent(
        """
        [all:vars]
        ansible_user=ubuntu
        env=all
        [parent:children]
        child
        [parent:vars]
        env=parent
        ansible_port=2200
        [child]
        h1
        h2 ansible_user=root env=host
        [child:vars]
        env=child
        """
    )
    inv = parse_ini(text, "hosts")
    h1, h2 = inv.hosts["h1"], inv.hosts["h2"]
    assert (h1.user, h1.port, h1.facts) == ("ubuntu", 2200, {"env": "child"})
    assert (h2.user, h2.port, h2.facts) == ("root", 2200, {"env": "host"})
    assert inv.groups["parent"].vars == {"env": "parent", "ansible_port": 2200}


def test_ini_group_priority():
    text = dedent(
        """
        [a]
        h
        [b]
        h
        [a:vars]
        v=a
        ansible_group_priority=10
        [b:vars]
        v=b
        """
    )
    assert parse_ini(text, "hosts").hosts["h"].facts["v"] == "a"


def test_ini_values_are_python_literals_where_they_parse():
    text = dedent(
        """
        h a=1 b=1.5 c=True d=None e="[1, 2]" f="{'k': 'v'}" g=FALSE h=10-5 i=abc j="'7'" k=1e3
        [all:vars]
        q="007"
        r=007
        s = spaced value # comment kept
        t=[1, 2]
        """
    )
    facts = parse_ini(text, "hosts").hosts["h"].facts
    assert facts == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": [1, 2],
        "f": {"k": "v"},
        "g": "FALSE",
        "h": "10-5",
        "i": "abc",
        "j": "7",
        "k": 1000.0,
        "q": "007",
        "r": "007",
        "s": "spaced value # comment kept",
        "t": [1, 2],
    }


def test_ini_host_port_shorthand_and_ranges():
    text = dedent(
        """
        [web]
        www[01:03].example.com:2222
        plain.example.com:2200 ansible_port=2201
        [198.51.100.1]:2300
        2001:db8::1
        [2001:db8::2]:2400
        db-[a:b]
        """
    )
    inv = parse_ini(text, "hosts")
    assert inv.problems == []
    ports = {h.name: h.port for h in inv.hosts.values()}
    assert ports == {
        "www01.example.com": 2222,
        "www02.example.com": 2222,
        "www03.example.com": 2222,
        "plain.example.com": 2201,
        "198.51.100.1": 2300,
        "2001:db8::1": 22,
        "2001:db8::2": 2400,
        "db-a": 22,
        "db-b": 22,
    }
    assert inv.hosts["2001:db8::2"].address == "2001:db8::2"


def test_ini_comments():
    text = "; a comment\n# another\n  \nh1 # trailing comment\nh2 ; only # starts one inline\n"
    inv = parse_ini(text, "hosts")
    assert list(inv.hosts) == ["h1"]
    assert messages(inv) == ["hosts:5: expected key=value after host h2, got ';'; line ignored"]


def test_ini_host_in_several_sections_keeps_first_line_and_merges_vars():
    text = "[a]\nh x=1 y=1\n[b]\nh y=2\n"
    h = parse_ini(text, "hosts").hosts["h"]
    assert (h.source, h.facts, h.groups) == ("hosts:2", {"x": 1, "y": 2}, ("a", "b"))


def test_ini_children_declared_later():
    text = "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh\n"
    inv = parse_ini(text, "hosts")
    assert inv.problems == []
    assert inv.groups["top"].children == ("mid",)
    assert inv.groups["mid"].children == ("leaf",)
    assert inv.hosts["h"].groups == ("leaf", "mid", "top")
    assert inv.groups["all"].children == ("top", "ungrouped")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[web]\nh1\n[web:bogus]\n", 3, "section [web:bogus] has unknown type 'bogus'"),
        ("[web]\n[bad name]\n", 2, "invalid section [bad name]"),
        ("[web]\nweb[3:1]\n", 2, "web[3:1]: bad range [3:1]: begin is greater than end"),
        ("[web]\nweb[1:3\n", 2, "'[' without ']'"),
        ("h1\nh2 x='unclosed\n", 2, "cannot read host line: No closing quotation"),
        ("[web:vars]\nnovalue\n[web]\n", 2, "expected key=value, got 'novalue'"),
        ("[p:children]\nbad child\n", 2, "expected a group name, got 'bad child'"),
        ("[ghost:vars]\nx=1\n", 1, "section [ghost:vars] is for group ghost, which no section"),
        ("[p:children]\nkid\n[q:children]\nkid\n", 2, "section [q:children] names group kid"),
        ("h1:\n", 1, "cannot end with ':'"),
        ("---\n", 1, "YAML"),
    ],
)
def test_ini_syntax_errors_name_line(text, line, reason):
    with pytest.raises(InventoryError) as info:
        parse_ini(text, "inv.ini")
    assert (info.value.source, info.value.line) == ("inv.ini", line)
    assert reason in info.value.reason, info.value.reason


def test_ini_vars_before_group_declared_is_fine():
    inv = parse_ini("[web:vars]\nenv=prod\n[web]\nh\n", "hosts")
    assert inv.hosts["h"].facts == {"env": "prod"}


def test_ini_bad_host_var_token_is_a_problem():
    text = "[web]\nh1 ansible_host 10.0.0.1\nh2\n"
    inv = parse_ini(text, "inv.ini")
    assert list(inv.hosts) == ["h2"]
    assert messages(inv) == [
        "inv.ini:2: expected key=value after host h1, got 'ansible_host'; line ignored"
    ]


def test_ini_bad_port_value_skips_host():
    inv = parse_ini("h1 ansible_port=http\nh2:99999\nh3\n", "inv.ini")
    assert list(inv.hosts) == ["h3"]
    assert messages(inv)[0] == (
        "inv.ini:1: host h1: ansible_port must be a whole number from 1 to 65535, "
        "not 'http'; skipped"
    )
    assert messages(inv)[1].startswith("inv.ini:2: host h2: ansible_port must be")


def test_ini_secrets_are_masked_in_group_vars_and_facts():
    text = "[all:vars]\nansible_password=pw\nansible_become_password=bp\n[web]\nh\n"
    inv = parse_ini(text, "hosts")
    h = inv.hosts["h"]
    assert h.password == "pw"
    assert h.facts == {"ansible_become_password": "********"}
    assert inv.groups["all"].vars == {
        "ansible_password": "********",
        "ansible_become_password": "********",
    }


def test_ini_host_name_with_spaces_has_no_address():
    inv = parse_ini('"my host"\nok\n', "hosts")
    assert list(inv.hosts) == ["ok"]
    assert messages(inv) == ["hosts:1: host 'my host' has no address; skipped"]


def test_ini_empty_file():
    inv = parse_ini("", "hosts")
    assert inv.hosts == {} and inv.problems == []


# ---------------------------------------------------------------- dynamic JSON

DYNAMIC = {
    "web": {"hosts": ["w1", "w2"], "vars": {"env": "prod", "ansible_user": "deploy"}},
    "db": ["d1"],
    "prod": {"children": ["web", "db"], "vars": {"dc": "par1", "env": "base"}},
    "all": {"vars": {"ntp": "ntp1"}},
    "_meta": {
        "hostvars": {
            "w1": {"ansible_host": "10.0.0.1", "rack": 4},
            "d1": {"ansible_port": "2200", "ansible_ssh_pass": "pw"},
        }
    },
}


def test_dynamic_inventory():
    inv = parse_dynamic(DYNAMIC, "ec2.py")
    assert inv.problems == []
    w1, w2, d1 = inv.hosts["w1"], inv.hosts["w2"], inv.hosts["d1"]
    assert (w1.address, w1.user, w1.facts) == (
        "10.0.0.1",
        "deploy",
        {"ntp": "ntp1", "dc": "par1", "env": "prod", "rack": 4},
    )
    assert w2.address == "w2"
    assert (d1.port, d1.password, d1.user) == (2200, "pw", None)
    assert d1.groups == ("db", "prod")
    assert w1.source == "ec2.py"
    assert inv.members("prod") == {"w1", "w2", "d1"}


def test_dynamic_hostvars_from_host_calls():
    data = {"web": ["w1", "w2"]}
    inv = parse_dynamic(data, "inv.sh", {"w1": {"ansible_host": "10.1.1.1"}})
    assert inv.hosts["w1"].address == "10.1.1.1"
    assert inv.hosts["w2"].address == "w2"
    assert dynamic_host_names({**data, "db": {"hosts": ["d", "w1"]}}) == ["w1", "w2", "d"]


def test_dynamic_meta_wins_over_hostvars_argument():
    data = {"web": ["w1"], "_meta": {"hostvars": {}}}
    assert parse_dynamic(data, "s", {"w1": {"ansible_host": "x"}}).hosts["w1"].address == "w1"


def test_dynamic_simplified_group_is_a_host_with_vars():
    inv = parse_dynamic({"lonely": {"ansible_host": "10.9.9.9", "k": 1}}, "s")
    assert inv.hosts["lonely"].address == "10.9.9.9"
    assert inv.hosts["lonely"].facts == {"k": 1}
    assert dynamic_host_names({"lonely": {"k": 1}}) == ["lonely"]


def test_dynamic_ungrouped_and_all():
    inv = parse_dynamic({"all": {"hosts": ["a"], "children": ["ungrouped", "g"]}, "g": ["b"]}, "s")
    assert inv.groups["ungrouped"].hosts == ("a",)
    assert inv.hosts["a"].groups == ("ungrouped",)


def test_dynamic_problems():
    data = {
        "a": {"hosts": "h1"},
        "b": {"hosts": ["h2"], "vars": [1]},
        "c": {"hosts": ["h3"], "children": "x"},
        "d": ["h4", "h5"],
        "_meta": {"hostvars": {"h4": ["not", "a", "dict"]}},
    }
    inv = parse_dynamic(data, "s")
    assert list(inv.hosts) == ["h5"]
    assert messages(inv) == [
        "s: group a: hosts must be a list of host names; group skipped",
        "s: group b: vars must be an object; group skipped",
        "s: group c: children must be a list of group names; group skipped",
        "s: host h4: its variables must be an object; skipped",
    ]


@pytest.mark.parametrize("data", [[], "x", None, 3])
def test_dynamic_not_an_object(data):
    with pytest.raises(InventoryError) as info:
        parse_dynamic(data, "inv.py")
    assert info.value.source == "inv.py"
    assert "expected a JSON object" in info.value.reason


# ---------------------------------------------------------------- together


def test_merge_of_formats():
    yaml_inv = parse_yaml("hosts:\n  a: {}\n  b: {}\ngroups:\n  web: {hosts: [a]}\n", "one.yaml")
    ini_inv = parse_ini("[web]\nb\nc\n", "two.ini")
    inv = merge([yaml_inv, ini_inv])
    assert list(inv.hosts) == ["a", "b", "c"]
    assert inv.hosts["b"].source == "one.yaml:3"
    assert messages(inv) == ["two.ini:2: host b is already defined at one.yaml:3; ignored"]
    assert inv.groups["web"].hosts == ("a", "b", "c")
