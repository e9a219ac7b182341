from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def make_test_pack(packs: Path) -> None:
    """A pack exercising secrets, policies, scripts and a broken file."""
    pack = packs / "tpack"
    write(
        pack / "pack.yaml",
        """
        name: tpack
        description: test pack
        version: 0.1.0
        author: tests
        email: tests@example.com
    """,
    )
    write(
        pack / "actions" / "secret_echo.yaml",
        """
        name: secret_echo
        runner_type: local-shell-cmd
        parameters:
          token:
            type: string
            secret: true
            required: true
          cmd:
            default: "echo token=$TOKEN"
          env:
            default:
              TOKEN: "{{ token }}"
    """,
    )
    write(
        pack / "actions" / "flaky.yaml",
        """
        name: flaky
        runner_type: local-shell-cmd
        parameters:
          cmd:
            default: "exit 3"
    """,
    )
    write(
        pack / "actions" / "slow.yaml",
        """
        name: slow
        runner_type: local-shell-cmd
        parameters:
          key:
            type: string
            default: a
          cmd:
            default: "sleep 0.6"
    """,
    )
    write(
        pack / "actions" / "broken.yaml",
        """
        name: broken
        runner_type: local-shell-cmd
        parameters: [unclosed
    """,
    )
    write(
        pack / "actions" / "nofile.yaml",
        """
        name: nofile
        runner_type: local-shell-script
        entry_point: missing.sh
    """,
    )
    write(
        pack / "actions" / "bad_override.yaml",
        """
        name: bad_override
        runner_type: local-shell-cmd
        parameters:
          env:
            type: string
    """,
    )
    write(
        pack / "actions" / "show_config.yaml",
        """
        name: show_config
        runner_type: python-script
        entry_point: show_config.py
    """,
    )
    write(
        pack / "actions" / "show_config.py",
        """
        from st2common.runners.base_action import Action

        class ShowConfig(Action):
            def run(self):
                return {"token": self.config["token"], "region": self.config["region"]}
    """,
    )
    write(
        pack / "config.schema.yaml",
        """
        token:
          type: string
          secret: true
          required: true
        region:
          type: string
          default: eu-west-1
    """,
    )
    write(
        pack / "policies" / "flaky_retry.yaml",
        """
        name: flaky_retry
        resource_ref: tpack.flaky
        policy_type: action.retry
        parameters:
          retry_on: failure
          max_retry_count: 2
          delay: 0
    """,
    )
    write(
        pack / "policies" / "slow_concurrency.yaml",
        """
        name: slow_concurrency
        resource_ref: tpack.slow
        policy_type: action.concurrency
        parameters:
          action: delay
          threshold: 1
    """,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    packs = tmp_path_factory.mktemp("packs")
    make_test_pack(packs)
    data = tmp_path_factory.mktemp("data")
    # Pack configs may read the datastore; the key is set by the test that needs it.
    write(data / "configs" / "tpack.yaml", 'token: "{{ st2kv.system.cfg_token | decrypt_kv }}"\n')
    srv = Server(
        data,
        packs_dirs=[ROOT / "examples" / "packs", packs],
        env={"SQUALL_OUTPUT_CAP_BYTES": "20000"},
    ).start()
    yield srv
    srv.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
