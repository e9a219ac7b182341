"""Settings from flags, SQUALL_* variables and the config file, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.config import Settings
from squall.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_config_file_sets_what_the_environment_does_not(tmp_path: Path) -> None:
    config = write(
        tmp_path / "squall.yaml",
        "port: 9200\n"
        "inventory: [/srv/a.yaml, /srv/b.ini]\n"
        "ssh:\n  concurrency: 250\n  host_key_check: accept-new\n"
        "worker_concurrency: 8\n",
    )
    env = {"SQUALL_DATA_DIR": str(tmp_path), "SQUALL_CONFIG": str(config)}
    settings = Settings.from_env(env)
    assert settings.port == 9200
    assert settings.inventory_paths == (Path("/srv/a.yaml"), Path("/srv/b.ini"))
    assert settings.ssh_concurrency == 250 and settings.ssh_host_key_check == "accept-new"
    assert settings.worker_concurrency == 8
    # The environment wins over the file, and a flag over both.
    env["SQUALL_PORT"] = "9300"
    assert Settings.from_env(env).port == 9300
    assert Settings.from_env(env, port=9400).port == 9400
    # --config names the file itself.
    other = write(tmp_path / "other.yaml", "ssh_concurrency: 7\n")
    assert Settings.from_env(env, config=other).ssh_concurrency == 7


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot: 9101\n", "unknown setting 'prot'"),
        ("port: [\n", "squall.yaml:2: not valid YAML"),
        ("- port\n", "expected a mapping"),
        ("ssh:\n  concurency: 3\n", "unknown setting 'ssh_concurency'"),
        ("port: many\n", "SQUALL_PORT must be an integer"),
    ],
)
def test_a_bad_config_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "squall.yaml", text)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SQUALL_DATA_DIR": str(tmp_path), "SQUALL_CONFIG": str(config)})
    assert message in caught.value.message


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        Settings.from_env({"SQUALL_CONFIG": str(tmp_path / "nope.yaml")})
