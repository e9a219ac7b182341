from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.api.conftest import write
from tests.support.server import API_KEY, Server

# Anything matching this is masked wherever Squall shows or stores text.
MASK_PATTERN = r"PLANTED-[0-9a-f]{12}"
# The one origin whose pages may call the API.
PORTAL = "https://portal.example"


def make_security_pack(packs: Path) -> None:
    pack = packs / "secpack"
    write(pack / "pack.yaml", "name: secpack\nversion: 0.1.0\ndescription: s\nauthor: tests\n")
    # Injection: event data reaching a shell command, a workflow and a script.
    for url, action, params in (
        ("inject", "core.local", {"cmd": "echo {{ trigger.body.msg }}"}),
        ("inject", "secpack.echo_flow", {"msg": "{{ trigger.body.msg }}"}),
        ("inject", "secpack.py_echo", {"msg": "{{ trigger.body.msg }}"}),
        ("plant", "secpack.leaky_flow", {"note": "{{ trigger.body.note }}"}),
    ):
        name = f"{url}_{action.split('.')[1]}"
        write(
            pack / "rules" / f"{name}.yaml",
            f"""
            name: {name}
            pack: secpack
            enabled: true
            trigger: {{type: core.st2.webhook, parameters: {{url: {url}}}}}
            action: {{ref: {action}, parameters: {params!r}}}
            """,
        )
    write(
        pack / "actions" / "echo_flow.yaml",
        """
        name: echo_flow
        runner_type: orquesta
        entry_point: workflows/echo_flow.yaml
        parameters:
          msg: {type: string, required: true}
        """,
    )
    write(
        pack / "actions" / "workflows" / "echo_flow.yaml",
        """
        version: 1.0
        input: [msg]
        output:
          - said: <% ctx().said %>
        tasks:
          say:
            action: core.local
            input:
              cmd: echo {{ ctx().msg }}
            next:
              - when: <% succeeded() %>
                publish: said=<% result().stdout %>
        """,
    )
    write(
        pack / "actions" / "py_echo.yaml",
        """
        name: py_echo
        runner_type: python-script
        entry_point: py_echo.py
        parameters:
          msg: {type: string, required: true}
        """,
    )
    write(
        pack / "actions" / "py_echo.py",
        """
        from st2common.runners.base_action import Action

        class Echo(Action):
            def run(self, msg):
                print(msg)
                return {"msg": msg}
        """,
    )
    # Secrets: a secret parameter, a datastore secret, a configured pattern.
    write(
        pack / "actions" / "leak.yaml",
        """
        name: leak
        runner_type: local-shell-cmd
        parameters:
          token: {type: string, secret: true, required: true}
          note: {type: string}
          cmd:
            default: >-
              echo "token=$TOKEN kv={{ st2kv.system.planted_kv | decrypt_kv }} note={{ note }}";
              echo "again $TOKEN" >&2
          env:
            default:
              TOKEN: "{{ token }}"
        """,
    )
    write(
        pack / "actions" / "leaky_flow.yaml",
        """
        name: leaky_flow
        runner_type: orquesta
        entry_point: workflows/leaky_flow.yaml
        parameters:
          note: {type: string}
        """,
    )
    # A workflow's secret input, handed to a task's ordinary parameter.
    write(
        pack / "actions" / "secret_flow.yaml",
        """
        name: secret_flow
        runner_type: orquesta
        entry_point: workflows/secret_flow.yaml
        parameters:
          password: {type: string, secret: true, required: true}
        """,
    )
    write(
        pack / "actions" / "workflows" / "secret_flow.yaml",
        """
        version: 1.0
        input: [password]
        tasks:
          show:
            action: core.local
            input:
              cmd: echo pw=<% ctx().password %>
        """,
    )
    write(
        pack / "actions" / "workflows" / "leaky_flow.yaml",
        """
        version: 1.0
        input: [note]
        output:
          - out: <% ctx().out %>
        tasks:
          leak:
            action: secpack.leak
            input:
              token: <% st2kv('system.planted_kv', decrypt => true) %>
              note: <% ctx().note %>
            next:
              - when: <% succeeded() %>
                publish: out=<% result().stdout %>
        """,
    )


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def security_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over HTTPS (a self-signed certificate), masking a pattern,
    with its webhook intake (HTTPS too)."""
    packs = tmp_path_factory.mktemp("packs")
    make_security_pack(packs)
    srv = Server(
        tmp_path_factory.mktemp("data"),
        packs_dirs=[packs],
        env={"SQUALL_MASK_PATTERNS": MASK_PATTERN, "SQUALL_CORS_ORIGINS": PORTAL},
        tls=self_signed(tmp_path_factory.mktemp("tls")),
        intake=True,
    ).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(security_server: Server) -> Iterator[httpx.Client]:
    with security_server.client() as c:
        yield c


def intake_client(server: Server) -> httpx.Client:
    """A client of the server's webhook intake (hostile and secret-bearing
    webhooks go through it: it runs in a process of its own)."""
    return httpx.Client(
        base_url=server.intake_url,
        headers={"St2-Api-Key": API_KEY},
        verify=server.verify,
        timeout=30,
    )


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rule_executions(client: httpx.Client, rule_ref: str, count: int = 1) -> list[dict[str, Any]]:
    """The executions the rule started (waits for ``count`` of them)."""

    def started() -> list[str]:
        found = client.get("/api/v1/ruleenforcements", params={"rule_ref": rule_ref}).json()
        ids = [e["execution_id"] for e in found if e.get("execution_id")]
        return ids if len(ids) >= count else []

    return [{"id": i} for i in wait_for(started, f"{count} execution(s) of rule {rule_ref}")]
