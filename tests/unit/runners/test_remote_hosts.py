"""Tests for the host resolution of the remote runners: which hosts an
execution runs on, and how to reach each (squall.runners.remote.resolve_endpoints)."""

from __future__ import annotations

from typing import Any

import pytest

from squall.core.inventory import Group, Host, Inventory
from squall.core.targeting import TargetError
from squall.errors import RunnerError
from squall.runners.remote import endpoint_of, resolve_endpoints
from squall.runners.ssh import Endpoint

KEY_MATERIAL = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAA\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def _inventory(*extra: Host) -> Inventory:
    hosts = [
        Host("web-01", "10.0.1.1", user="deploy", facts={"role": "web", "env": "prod"}),
        Host(
            "web-02",
            "web-02.example.com",
            port=2222,
            key_file="~/.ssh/web",
            certificate="~/.ssh/web-cert.pub",
            agent=False,
            facts={"role": "web", "env": "staging"},
        ),
        Host("db-01", "10.0.2.1", password="s3cret", jump="bastion", facts={"role": "db"}),
        Host("bastion", "203.0.113.7", user="jump", port=2200, jump="outer"),
        Host("outer", "198.51.100.1", user="edge"),
        Host("cache-01", "2001:db8::5", jump="ops@gw.example.com:2022", facts={"role": "cache"}),
        *extra,
    ]
    groups = [Group("webservers", hosts=("web-01", "web-02")), Group("databases", ("db-01",))]
    return Inventory({h.name: h for h in hosts}, {g.name: g for g in groups})


INVENTORY = _inventory()


def resolve(inventory: Inventory | None = INVENTORY, **params: Any) -> list[Endpoint]:
    return resolve_endpoints(params, inventory)


def names(endpoints: list[Endpoint]) -> list[str]:
    return [ep.name for ep in endpoints]


# -- target or hosts -------------------------------------------------------------------


def test_target_selects_inventory_hosts_in_inventory_order() -> None:
    eps = resolve(target="role=web")
    assert names(eps) == ["web-01", "web-02"]
    web1, web2 = eps
    assert web1 == Endpoint(name="web-01", address="10.0.1.1", port=22, user="deploy")
    assert web2 == Endpoint(
        name="web-02",
        address="web-02.example.com",
        port=2222,
        key_file="~/.ssh/web",
        certificate="~/.ssh/web-cert.pub",
        agent=False,
    )


def test_target_by_group_and_all() -> None:
    assert names(resolve(target="@databases")) == ["db-01"]
    assert names(resolve(target="all")) == list(INVENTORY.hosts)


def test_target_and_hosts_together_are_refused() -> None:
    with pytest.raises(RunnerError, match="either 'target' or 'hosts'"):
        resolve(target="all", hosts="web-01")


def test_target_without_an_inventory_is_refused() -> None:
    with pytest.raises(RunnerError, match="needs an inventory"):
        resolve(None, target="all")


@pytest.mark.parametrize("expression", ["role=", "(web-01", "role=nothing-has-this", "nope-*"])
def test_target_errors_propagate(expression: str) -> None:
    with pytest.raises(TargetError):
        resolve(target=expression)


def test_target_matching_nothing_says_so() -> None:
    with pytest.raises(TargetError, match="matches no host"):
        resolve(target="@databases and role=web")


def test_hosts_by_inventory_name() -> None:
    eps = resolve(hosts="web-02, web-01")
    assert names(eps) == ["web-02", "web-01"]  # the order given
    assert eps[0].port == 2222
    assert eps[1].user == "deploy"


def test_hosts_are_deduplicated_and_blanks_skipped() -> None:
    assert names(resolve(hosts=" web-01 ,, web-01,10.0.0.9 , ")) == ["web-01", "10.0.0.9"]


def test_hosts_by_address() -> None:
    eps = resolve(hosts="root@10.0.0.9:2200,10.0.0.10,admin@host.example.com")
    assert eps == [
        Endpoint(name="root@10.0.0.9:2200", address="10.0.0.9", port=2200, user="root"),
        Endpoint(name="10.0.0.10", address="10.0.0.10", port=22),
        Endpoint(name="admin@host.example.com", address="host.example.com", user="admin"),
    ]


def test_hosts_without_an_inventory() -> None:
    eps = resolve(None, hosts="web-01")
    assert eps == [Endpoint(name="web-01", address="web-01")]


@pytest.mark.parametrize(
    ("text", "user", "address", "port"),
    [
        ("[::1]:2222", None, "::1", 2222),
        ("[::1]", None, "::1", 22),
        ("me@[2001:db8::7]:22", "me", "2001:db8::7", 22),
        ("::1", None, "::1", 22),
        ("fe80::1", None, "fe80::1", 22),
        ("a@b@host:23", "a@b", "host", 23),
        ("@host", None, "host", 22),
    ],
)
def test_address_forms(text: str, user: str | None, address: str, port: int) -> None:
    (ep,) = resolve(None, hosts=text)
    assert (ep.name, ep.user, ep.address, ep.port) == (text, user, address, port)


@pytest.mark.parametrize(
    "text", ["host:0", "host:65536", "host:ssh", "host:", "[::1]:x", "[::1]:", "u@h:-1"]
)
def test_bad_port(text: str) -> None:
    with pytest.raises(RunnerError, match="port must be a number from 1 to 65535"):
        resolve(None, hosts=text)


@pytest.mark.parametrize("text", ["root@", ":22", "[]:22", "[::1]2222", "[::1"])
def test_not_a_host(text: str) -> None:
    with pytest.raises(RunnerError, match="is not a host"):
        resolve(None, hosts=text)


@pytest.mark.parametrize("params", [{}, {"hosts": ""}, {"hosts": " , ,"}, {"target": ""}])
def test_nothing_to_run_on(params: dict[str, Any]) -> None:
    with pytest.raises(RunnerError, match="no hosts to run on"):
        resolve_endpoints(params, INVENTORY)


# -- overrides -------------------------------------------------------------------------


def test_username_password_and_port_override_the_inventory() -> None:
    eps = resolve(target="role=web", username="ops", password="pw", port="2022")
    assert [(ep.user, ep.password, ep.port) for ep in eps] == [
        ("ops", "pw", 2022),
        ("ops", "pw", 2022),
    ]
    # The rest of what the inventory says stays.
    assert eps[1].key_file == "~/.ssh/web"
    assert eps[1].agent is False


def test_overrides_apply_to_raw_addresses_too() -> None:
    (ep,) = resolve(None, hosts="root@10.0.0.9:2200", username="ops", port=23)
    assert (ep.user, ep.port, ep.address) == ("ops", 23, "10.0.0.9")


def test_empty_overrides_change_nothing() -> None:
    eps = resolve(target="role=web", username="", password=None, port=0, private_key="")
    assert eps == resolve(target="role=web")


def test_private_key_as_a_path() -> None:
    eps = resolve(hosts="web-02,db-01", private_key="/keys/id_ed25519", passphrase="pp")
    for ep in eps:
        assert ep.key_file == "/keys/id_ed25519"
        assert ep.key_data is None
        assert ep.passphrase == "pp"


def test_private_key_as_key_material() -> None:
    (ep,) = resolve(hosts="web-02", private_key=KEY_MATERIAL)
    assert ep.key_data == KEY_MATERIAL
    assert ep.key_file is None  # the inventory's key file is not tried instead
    assert "PRIVATE KEY" not in repr(ep)


def test_rsa_pem_key_material_is_recognized() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    (ep,) = resolve(None, hosts="h", private_key=pem)
    assert ep.key_data == pem
    assert ep.key_file is None


# -- jump hosts ------------------------------------------------------------------------


def test_jump_hosts_from_the_inventory_chain() -> None:
    (db,) = resolve(hosts="db-01")
    assert db.password == "s3cret"
    assert db.jump == Endpoint(
        name="bastion",
        address="203.0.113.7",
        port=2200,
        user="jump",
        jump=Endpoint(name="outer", address="198.51.100.1", user="edge"),
    )


def test_jump_host_given_as_an_address() -> None:
    (cache,) = resolve(target="role=cache")
    assert cache.jump == Endpoint(
        name="ops@gw.example.com:2022", address="gw.example.com", port=2022, user="ops"
    )


def test_overrides_do_not_reach_jump_hosts() -> None:
    (db,) = resolve(hosts="db-01", username="ops", port=2022, password="pw")
    assert db.user == "ops"
    assert db.jump is not None
    assert (db.jump.user, db.jump.port, db.jump.password) == ("jump", 2200, None)


def test_bastion_host_by_inventory_name_replaces_every_jump() -> None:
    eps = resolve(hosts="web-01,cache-01", bastion_host="bastion")
    for ep in eps:
        assert ep.jump is not None
        assert (ep.jump.name, ep.jump.address, ep.jump.port) == ("bastion", "203.0.113.7", 2200)
        assert ep.jump.jump is not None
        assert ep.jump.jump.name == "outer"  # the bastion's own jump host


def test_bastion_host_by_address() -> None:
    eps = resolve(None, hosts="10.0.0.1,10.0.0.2", bastion_host="me@[2001:db8::1]:2200")
    expected = Endpoint(name="me@[2001:db8::1]:2200", address="2001:db8::1", port=2200, user="me")
    assert [ep.jump for ep in eps] == [expected, expected]


def test_bad_bastion_host() -> None:
    with pytest.raises(RunnerError, match="port must be"):
        resolve(None, hosts="10.0.0.1", bastion_host="gw:99999")


def test_jump_loop_is_refused() -> None:
    inv = _inventory(
        Host("a", "10.9.0.1", jump="b"),
        Host("b", "10.9.0.2", jump="c"),
        Host("c", "10.9.0.3", jump="b"),
    )
    with pytest.raises(RunnerError, match="jump hosts loop: a -> b -> c -> b"):
        resolve(inv, hosts="a")
    with pytest.raises(RunnerError, match="jump hosts loop: b -> c -> b"):
        resolve(inv, hosts="10.0.0.1", bastion_host="b")


def test_host_that_is_its_own_jump_host_is_refused() -> None:
    inv = _inventory(Host("self", "10.9.0.9", jump="self"))
    with pytest.raises(RunnerError, match="jump hosts loop: self -> self"):
        resolve(inv, target="self")


def test_endpoint_of_without_inventory_reads_jump_as_an_address() -> None:
    host = Host("x", "10.0.0.1", jump="bastion")
    ep = endpoint_of(host, None)
    assert ep.jump == Endpoint(name="bastion", address="bastion")
