"""Reading packs from disk: squall.packs.loader."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import jinja2
import pytest
import yaml

from squall.core import templating
from squall.errors import ContentError
from squall.packs.loader import (
    BUILTIN_PACKS_DIR,
    LoadedPack,
    discover_packs,
    load_pack,
    load_packs,
    load_yaml,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES_PACK = REPO_ROOT / "examples" / "packs" / "examples"

PACK_YAML = """\
---
name: {name}
description: A pack for tests.
version: 0.1.0
author: Tester
email: tester@example.com
keywords: [test]
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def make_pack(base: Path, name: str = "demo", manifest: str | None = None) -> Path:
    pack = base / name
    write(pack / "pack.yaml", manifest if manifest is not None else PACK_YAML.format(name=name))
    return pack


def add_script_action(pack: Path, name: str = "hello") -> None:
    write(
        pack / "actions" / f"{name}.yaml",
        f"""\
        ---
        name: {name}
        runner_type: local-shell-script
        description: Say hello.
        entry_point: {name}.sh
        parameters:
          who:
            type: string
            default: world
            position: 0
          loud:
            type: boolean
        """,
    )
    write(pack / "actions" / f"{name}.sh", "#!/bin/sh\necho hello $1\n")


def errors_for(pack: LoadedPack, filename: str) -> list[ContentError]:
    return [e for e in pack.errors if Path(e.path).name == filename]


def only_error(pack: LoadedPack) -> ContentError:
    assert len(pack.errors) == 1, [e.message for e in pack.errors]
    return pack.errors[0]


# ---------------------------------------------------------------- good pack


@pytest.fixture
def good_pack(tmp_path: Path) -> Path:
    pack = make_pack(tmp_path / "packs")
    add_script_action(pack)
    write(
        pack / "actions" / "workflows" / "deploy.yaml",
        "version: 1.0\ntasks: {}\n",
    )
    write(
        pack / "actions" / "deploy.yaml",
        """\
        ---
        name: deploy
        pack: demo
        runner_type: orquesta
        entry_point: workflows/deploy.yaml
        enabled: false
        tags:
          - name: team
            value: ops
        notify:
          on-failure:
            routes: [slack]
        parameters:
          target:
            type: object
            required: true
            properties:
              host: {type: string, required: true}
              port: {type: integer, default: 22}
        """,
    )
    write(
        pack / "actions" / "ping.yml",
        """\
        name: ping
        runner_type: http-request
        parameters:
          url:
            default: https://example.com/health
        """,
    )
    # A legacy pack-wide config file, never an action.
    write(pack / "actions" / "config.yaml", "foo: bar\n")
    write(
        pack / "rules" / "on_push.yaml",
        """\
        ---
        name: on_push
        trigger:
          type: demo.push
        criteria:
          trigger.branch: {type: equals, pattern: main}
        action:
          ref: demo.deploy
          parameters:
            target: {host: "{{ trigger.host }}"}
        """,
    )
    write(pack / "sensors" / "push_sensor.py", "class PushSensor: pass\n")
    write(
        pack / "sensors" / "push_sensor.yaml",
        """\
        ---
        class_name: PushSensor
        entry_point: push_sensor.py
        poll_interval: 30
        trigger_types:
          - name: push
            description: A push happened.
            payload_schema:
              type: object
              properties:
                branch: {type: string}
        """,
    )
    write(
        pack / "triggers" / "deployed.yaml",
        """\
        name: deployed
        payload_schema: {type: object}
        """,
    )
    write(
        pack / "aliases" / "deploy.yaml",
        """\
        ---
        name: deploy_alias
        action_ref: demo.deploy
        formats:
          - "deploy {{ target }}"
          - display: "ship <host>"
            representation: ["ship {{ target }}"]
        """,
    )
    write(
        pack / "policies" / "deploy.concurrency.yaml",
        """\
        ---
        name: deploy.concurrency
        resource_ref: demo.deploy
        policy_type: action.concurrency
        parameters:
          threshold: 1
          action: delay
        """,
    )
    return pack


def test_good_pack_loads(good_pack: Path) -> None:
    pack = load_pack(good_pack, None)

    assert pack.errors == []
    assert pack.ref == "demo"
    assert pack.path == good_pack
    assert pack.meta["name"] == "demo"
    assert pack.meta["ref"] == "demo"
    assert pack.meta["version"] == "0.1.0"
    assert pack.meta["email"] == "tester@example.com"
    assert pack.meta["keywords"] == ["test"]
    assert pack.meta["dependencies"] == []

    actions = {a["name"]: a for a in pack.actions}
    assert sorted(actions) == ["deploy", "hello", "ping"]

    hello = actions["hello"]
    assert hello["ref"] == "demo.hello"
    assert hello["pack"] == "demo"
    assert hello["runner_type"] == "local-shell-script"
    assert hello["entry_point"] == "hello.sh"
    assert hello["entry_point_path"] == str(good_pack / "actions" / "hello.sh")
    assert Path(hello["entry_point_path"]).is_absolute()
    assert hello["metadata_file"] == "actions/hello.yaml"
    assert hello["enabled"] is True
    assert hello["parameters"]["who"] == {"type": "string", "default": "world", "position": 0}
    assert hello["tags"] == [] and hello["notify"] == {} and hello["output_schema"] == {}

    deploy = actions["deploy"]
    assert deploy["enabled"] is False
    assert deploy["entry_point_path"] == str(good_pack / "actions" / "workflows" / "deploy.yaml")
    assert deploy["tags"] == [{"name": "team", "value": "ops"}]
    assert deploy["notify"] == {"on-failure": {"routes": ["slack"]}}

    ping = actions["ping"]
    assert ping["entry_point"] == "" and ping["entry_point_path"] is None
    assert ping["metadata_file"] == "actions/ping.yml"

    (rule,) = pack.rules
    assert rule["ref"] == "demo.on_push"
    assert rule["enabled"] is False  # rules are disabled unless they say otherwise
    assert rule["action"]["ref"] == "demo.deploy"
    assert rule["metadata_file"] == "rules/on_push.yaml"

    (sensor,) = pack.sensors
    assert sensor["class_name"] == "PushSensor"
    assert sensor["ref"] == "demo.PushSensor"
    assert sensor["entry_point_path"] == str(good_pack / "sensors" / "push_sensor.py")
    assert sensor["trigger_types"] == ["demo.push"]

    triggers = {t["ref"]: t for t in pack.triggers}
    assert sorted(triggers) == ["demo.deployed", "demo.push"]
    assert triggers["demo.push"]["metadata_file"] == "sensors/push_sensor.yaml"
    assert triggers["demo.push"]["payload_schema"]["type"] == "object"
    assert triggers["demo.deployed"]["parameters_schema"] == {}

    (alias,) = pack.aliases
    assert alias["ref"] == "demo.deploy_alias" and alias["enabled"] is True
    (policy,) = pack.policies
    assert policy["policy_type"] == "action.concurrency"
    assert policy["parameters"] == {"threshold": 1, "action": "delay"}
    assert policy["metadata_file"] == "policies/deploy.concurrency.yaml"

    assert pack.config_schema is None
    assert pack.config == {}


def test_relative_pack_dir_gives_absolute_paths(
    good_pack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(good_pack.parent)
    pack = load_pack(Path("demo"))
    assert pack.errors == []
    assert pack.path.is_absolute()
    for action in pack.actions:
        if action["entry_point_path"]:
            assert Path(action["entry_point_path"]).is_absolute()


# ---------------------------------------------------------------- broken files


def test_broken_yaml_reports_path_and_line_and_the_rest_loads(good_pack: Path) -> None:
    broken = write(
        good_pack / "actions" / "broken.yaml",
        """\
        ---
        name: broken
        runner_type: local-shell-cmd
        parameters:
          cmd:
            type: string
           default: oops
        """,
    )
    pack = load_pack(good_pack, None)

    error = only_error(pack)
    assert error.path == str(broken)
    assert error.line == 7
    assert "invalid YAML" in error.reason
    assert error.message.startswith(f"{broken}:7: ")
    assert sorted(a["name"] for a in pack.actions) == ["deploy", "hello", "ping"]
    assert len(pack.rules) == 1 and len(pack.policies) == 1


def test_broken_rule_yaml_does_not_affect_actions(good_pack: Path) -> None:
    write(good_pack / "rules" / "bad.yaml", "name: bad\ntrigger: [unclosed\n")
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert error.path.endswith("bad.yaml") and error.line is not None
    assert len(pack.rules) == 1 and len(pack.actions) == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- just\n- a list\n", "expected action metadata as a mapping"),
        ("", "empty"),
        ("runner_type: noop\n", 'has no "name"'),
        ("name: x\n", 'has no "runner_type"'),
        ("name: x\nrunner_type: noop\nparamters: {}\n", 'unknown action field "paramters"'),
        ("name: x\nrunner_type: noop\npack: other\n", 'belongs to pack "demo"'),
        ("name: x\nrunner_type: noop\nenabled: maybe\n", '"enabled" must be true or false'),
        ("name: x\nrunner_type: python-script\n", 'needs an "entry_point"'),
        (
            "name: x\nrunner_type: local-shell-script\nentry_point: ../../etc/passwd\n",
            'must not use ".."',
        ),
        (
            "name: x\nrunner_type: local-shell-script\nentry_point: /etc/passwd\n",
            "outside the pack directory",
        ),
    ],
)
def test_bad_action_file_is_skipped(good_pack: Path, text: str, reason: str) -> None:
    write(good_pack / "actions" / "bad.yaml", text)
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert Path(error.path).name == "bad.yaml"
    assert reason in error.reason
    assert len(pack.actions) == 3


def test_missing_entry_point_is_reported(good_pack: Path) -> None:
    write(
        good_pack / "actions" / "gone.yaml",
        """\
        ---
        name: gone
        runner_type: python-script
        entry_point: gone.py
        """,
    )
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert Path(error.path).name == "gone.yaml"
    assert error.line == 4
    assert 'entry point "gone.py"' in error.reason
    assert "actions/gone.py" in error.reason
    assert "gone" not in {a["name"] for a in pack.actions}


def test_missing_sensor_entry_point_is_reported(good_pack: Path) -> None:
    (good_pack / "sensors" / "push_sensor.py").unlink()
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert "sensors/push_sensor.py" in error.reason
    assert pack.sensors == []
    # The trigger types of a sensor that did not load are not reported either.
    assert [t["ref"] for t in pack.triggers] == ["demo.deployed"]


def test_duplicate_action_names(good_pack: Path) -> None:
    write(
        good_pack / "actions" / "hello_again.yaml",
        """\
        ---
        runner_type: noop
        name: hello
        """,
    )
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert Path(error.path).name == "hello_again.yaml"  # files load in name order
    assert error.line == 3
    assert "duplicate action" in error.reason and "actions/hello.yaml" in error.reason
    (hello,) = [a for a in pack.actions if a["name"] == "hello"]
    assert hello["runner_type"] == "local-shell-script"


@pytest.mark.parametrize(
    ("params", "reason", "line"),
    [
        ("x:\n    type: strng\n", "unknown type 'strng'", 5),
        ("x:\n    type: string\n    requird: true\n", 'unknown attribute "requird"', 6),
        ("x:\n    type: string\n    required: yes please\n", '"required" must be', 6),
        ("bad-name:\n    type: string\n", 'parameter name "bad-name" is invalid', 4),
        ("x: string\n", "definition must be a mapping", 4),
        ("x:\n    type: object\n    properties:\n      y: {type: wat}\n", "unknown type", 7),
        ("x:\n    type: string\n    enum: []\n", '"enum" must be a non-empty list', 6),
        ("x:\n    type: string\n    pattern: '(['\n", "invalid regular expression", 6),
        (
            "a: {type: string, position: 0}\n  b: {type: string, position: 0}\n",
            "same position 0",
            5,
        ),
        (
            "a: {type: string, position: 0}\n  b: {type: string, position: 2}\n",
            "not contiguous",
            3,
        ),
    ],
)
def test_invalid_parameter_schema(good_pack: Path, params: str, reason: str, line: int) -> None:
    write(
        good_pack / "actions" / "bad.yaml",
        "name: bad\nrunner_type: noop\nparameters:\n  " + params,
    )
    pack = load_pack(good_pack)
    error = only_error(pack)
    assert reason in error.reason
    assert error.line == line
    assert len(pack.actions) == 3


def test_bad_rule_alias_policy_sensor(good_pack: Path) -> None:
    write(good_pack / "rules" / "no_action.yaml", "name: r\ntrigger: {type: core.st2.webhook}\n")
    write(good_pack / "aliases" / "no_ref.yaml", "name: a\nformats: [x]\n")
    write(good_pack / "policies" / "no_type.yaml", "name: p\nresource_ref: demo.deploy\n")
    write(good_pack / "sensors" / "fast.py", "")
    write(
        good_pack / "sensors" / "fast.yaml",
        "class_name: Fast\nentry_point: fast.py\npoll_interval: 1\n",
    )
    pack = load_pack(good_pack)
    reasons = {Path(e.path).name: e.reason for e in pack.errors}
    assert 'has no "action"' in reasons["no_action.yaml"]
    assert 'has no "action_ref"' in reasons["no_ref.yaml"]
    assert 'has no "policy_type"' in reasons["no_type.yaml"]
    assert "at least 4 seconds" in reasons["fast.yaml"]
    assert (len(pack.rules), len(pack.aliases), len(pack.policies), len(pack.sensors)) == (
        1,
        1,
        1,
        1,
    )


# ---------------------------------------------------------------- pack.yaml


def test_broken_pack_yaml_makes_only_that_pack_unloadable(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    broken = make_pack(packs, "broken", manifest="name: broken\nversion: [1.0\n")
    add_script_action(broken)
    fine = make_pack(packs, "fine")
    add_script_action(fine)

    with pytest.raises(ContentError) as info:
        load_pack(broken)
    assert info.value.path == str(broken / "pack.yaml") and info.value.line == 3

    packs_loaded, unloadable = load_packs([packs])
    assert [e.path for e in unloadable] == [str(broken / "pack.yaml")]
    loaded = {p.ref: p for p in packs_loaded}
    assert sorted(loaded) == ["fine"]
    assert loaded["fine"].errors == []
    assert [a["ref"] for a in loaded["fine"].actions] == ["fine.hello"]


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        ("name: x\ndescription: d\nauthor: a\n", '"version" is required'),
        ("name: x\ndescription: d\nversion: 0.1.0\n", '"author" is required'),
        ("name: x\ndescription: d\nauthor: a\nversion: 1.0\n", 'version "1.0" is not'),
        ("- a list\n", "expected the pack metadata as a mapping"),
        ("name: x\ndescription: d\nauthor: a\nversion: 0.1.0\nref: Bad-Ref\n", "ref"),
        (
            "name: x\ndescription: d\nauthor: a\nversion: 0.1.0\npython_versions: ['4']\n",
            "python_versions",
        ),
    ],
)
def test_invalid_pack_yaml(tmp_path: Path, manifest: str, reason: str) -> None:
    pack_dir = make_pack(tmp_path, "x", manifest=manifest)
    with pytest.raises(ContentError) as info:
        load_pack(pack_dir)
    assert info.value.path == str(pack_dir / "pack.yaml")
    assert reason in info.value.reason


def test_missing_pack_yaml(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match=r"pack\.yaml is missing"):
        load_pack(tmp_path / "nothing_here")


def test_pack_ref_rules(tmp_path: Path) -> None:
    base = "description: d\nauthor: a\nversion: 0.1.0\n"
    # A valid directory name is the ref when there is no explicit ref ...
    pack = load_pack(make_pack(tmp_path, "my_pack", manifest="name: My Pack\n" + base))
    assert pack.errors == [] and pack.ref == "my_pack" and pack.meta["name"] == "My Pack"
    # ... an explicit ref always wins ...
    pack = load_pack(make_pack(tmp_path, "whatever", manifest="name: W\nref: chosen\n" + base))
    assert pack.errors == [] and pack.ref == "chosen"
    # ... the name is used when the directory name is not a valid ref ...
    pack = load_pack(make_pack(tmp_path, "Some-Dir", manifest="name: fine_name\n" + base))
    assert pack.errors == [] and pack.ref == "fine_name"
    # ... and with neither, a ref is required.
    with pytest.raises(ContentError, match='add a "ref"') as info:
        load_pack(make_pack(tmp_path, "Other-Dir", manifest="name: Bad Name\n" + base))
    assert info.value.line == 1


# ---------------------------------------------------------------- discovery


def test_duplicate_pack_names_first_path_wins(tmp_path: Path) -> None:
    first = tmp_path / "builtin"
    second = tmp_path / "user"
    make_pack(first, "core")
    make_pack(second, "core")
    make_pack(second, "extra")
    # Same ref through an explicit "ref", under another directory name.
    make_pack(
        second,
        "zz_other_dir",
        manifest="name: Core Copy\nref: core\ndescription: d\nauthor: a\nversion: 0.1.0\n",
    )
    (second / "not_a_pack").mkdir()
    (second / ".hidden").mkdir()
    write(second / ".hidden" / "pack.yaml", PACK_YAML.format(name="hidden"))

    found = discover_packs([first, second, tmp_path / "does_not_exist"])
    assert found == [first / "core", second / "extra"]

    found = discover_packs([second, first])
    assert found == [second / "core", second / "extra"]


def test_discover_keeps_packs_with_broken_manifest(tmp_path: Path) -> None:
    make_pack(tmp_path, "bad", manifest="name: [\n")
    assert discover_packs([tmp_path]) == [tmp_path / "bad"]


# ---------------------------------------------------------------- config


CONFIG_SCHEMA = """\
---
api_url:
  type: string
  required: true
timeout:
  type: integer
  default: 30
verify:
  type: boolean
  default: true
token:
  type: string
  secret: true
retries:
  type: object
  properties:
    count: {type: integer, default: 3}
    backoff: {type: number, default: 1.5}
"""


def test_config_defaults_from_schema(tmp_path: Path) -> None:
    pack_dir = make_pack(tmp_path / "packs")
    write(pack_dir / "config.schema.yaml", CONFIG_SCHEMA)
    configs = tmp_path / "configs"

    # No config file: defaults only.
    pack = load_pack(pack_dir, configs)
    assert pack.errors == []
    assert pack.config_schema is not None and "api_url" in pack.config_schema
    assert pack.config == {
        "timeout": 30,
        "verify": True,
        "retries": {"count": 3, "backoff": 1.5},
    }

    # A config file: its values win, the rest come from the defaults.
    write(
        configs / "demo.yaml",
        """\
        ---
        api_url: https://api.example.com
        timeout: 5
        token: "{{ st2kv.system.demo_token | decrypt_kv }}"
        retries:
          count: 10
        extra: kept
        """,
    )
    pack = load_pack(pack_dir, configs)
    assert pack.errors == []
    assert pack.config == {
        "api_url": "https://api.example.com",
        "timeout": 5,
        "verify": True,
        "token": "{{ st2kv.system.demo_token | decrypt_kv }}",
        "retries": {"count": 10, "backoff": 1.5},
        "extra": "kept",
    }
    # Defaults are copies, never the schema's own objects.
    assert pack.config_schema is not None
    assert pack.config_schema["retries"]["properties"]["count"]["default"] == 3


def test_config_that_breaks_schema_is_reported(tmp_path: Path) -> None:
    pack_dir = make_pack(tmp_path / "packs")
    write(pack_dir / "config.schema.yaml", CONFIG_SCHEMA)
    configs = tmp_path / "configs"
    config_file = write(
        configs / "demo.yaml",
        "api_url: https://x\ntimeout: soon\ntoken: 12345\n",
    )
    pack = load_pack(pack_dir, configs)
    error = only_error(pack)
    assert error.path == str(config_file)
    assert error.line in (2, 3)
    assert "12345" not in error.message  # secrets never appear in errors
    # The broken file is ignored: only defaults remain.
    assert pack.config["timeout"] == 30 and "api_url" not in pack.config
    assert pack.actions == []


def test_config_missing_required_value(tmp_path: Path) -> None:
    pack_dir = make_pack(tmp_path / "packs")
    write(pack_dir / "config.schema.yaml", CONFIG_SCHEMA)
    write(tmp_path / "configs" / "demo.yaml", "timeout: 3\n")
    pack = load_pack(pack_dir, tmp_path / "configs")
    assert "'api_url' is a required property" in only_error(pack).reason


def test_invalid_config_schema(tmp_path: Path) -> None:
    pack_dir = make_pack(tmp_path / "packs")
    write(pack_dir / "config.schema.yaml", "api_url:\n  type: url\n")
    add_script_action(pack_dir)
    pack = load_pack(pack_dir)
    error = only_error(pack)
    assert error.line == 2 and "unknown type" in error.reason
    assert pack.config_schema is None and len(pack.actions) == 1


# ---------------------------------------------------------------- load_yaml


def test_load_yaml(tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "a: 1\nb: [x, y]\n")
    assert load_yaml(good) == {"a": 1, "b": ["x", "y"]}
    assert load_yaml(write(tmp_path / "empty.yaml", "")) is None

    bad = write(tmp_path / "bad.yaml", "a: 1\nb: 2\n  c: 3\n")
    with pytest.raises(ContentError) as info:
        load_yaml(bad)
    assert info.value.path == str(bad)
    assert info.value.line == 3

    unsafe = write(tmp_path / "unsafe.yaml", "a: !!python/object/apply:os.system [id]\n")
    with pytest.raises(ContentError) as info:
        load_yaml(unsafe)
    assert info.value.line == 1

    with pytest.raises(ContentError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- shipped packs


def test_builtin_core_pack_loads_without_errors() -> None:
    (core_dir,) = [p for p in discover_packs([BUILTIN_PACKS_DIR]) if p.name == "core"]
    pack = load_pack(core_dir, None)
    assert pack.errors == []
    assert pack.ref == "core"
    actions = {a["ref"]: a for a in pack.actions}
    assert {
        "core.local",
        "core.local_sudo",
        "core.http",
        "core.noop",
        "core.echo",
        "core.pause",
    } <= set(actions)
    assert actions["core.local"]["runner_type"] == "local-shell-cmd"
    assert actions["core.local"]["parameters"]["cmd"]["required"] is True
    assert actions["core.local_sudo"]["parameters"]["sudo"] == {"default": True, "immutable": True}
    assert actions["core.http"]["runner_type"] == "http-request"
    assert actions["core.http"]["parameters"]["url"]["required"] is True
    assert actions["core.noop"]["runner_type"] == "noop"
    assert actions["core.pause"]["parameters"]["max_pause"]["type"] == "integer"


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
@pytest.mark.parametrize(
    "message",
    ["hello", 'it\'s $(echo pwned) `echo pwned` "q" \\n; exit 3', "-n", "'", "{{ 1 + 1 }}", ""],
)
def test_core_echo_command_prints_message_verbatim(message: str) -> None:
    spec = load_yaml(BUILTIN_PACKS_DIR / "core" / "actions" / "echo.yaml")
    template = spec["parameters"]["cmd"]["default"]
    # Rendered as the shell command it is: the message is quoted for the shell.
    cmd = templating.render_value(template, {"message": message}, shell=True)
    result = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert result.stdout == message + "\n"


def test_core_pause_command() -> None:
    spec = load_yaml(BUILTIN_PACKS_DIR / "core" / "actions" / "pause.yaml")
    template = jinja2.Environment().from_string(spec["parameters"]["cmd"]["default"])
    assert template.render(max_pause=7, random=False) == "sleep 7"
    for _ in range(20):
        seconds = int(template.render(max_pause=3, random=True).removeprefix("sleep "))
        assert 1 <= seconds <= 3


def test_examples_pack_loads_without_errors(tmp_path: Path) -> None:
    pack = load_pack(EXAMPLES_PACK, tmp_path)
    assert pack.errors == []
    assert pack.ref == "examples"
    runners = {a["name"]: a["runner_type"] for a in pack.actions}
    assert runners == {
        "check_disk": "local-shell-script",
        "disk_report": "python-script",
        "remediate_host": "orquesta",
        "ci_pipeline": "action-chain",
        "release": "orquesta",
        "lb_member": "local-shell-script",
        "patch_host": "orquesta",
        "deploy_app": "remote-shell-script",
    }
    for action in pack.actions:
        assert Path(action["entry_point_path"]).is_file()
    assert {p["policy_type"] for p in pack.policies} == {"action.concurrency", "action.retry"}
    assert len(pack.rules) == 5
    # Defaults from config.schema.yaml, no config file needed.
    assert pack.config == {"warn_percent": 80, "mounts": ["/"]}


def test_examples_pack_config_file(tmp_path: Path) -> None:
    write(tmp_path / "examples.yaml", "warn_percent: 95\n")
    pack = load_pack(EXAMPLES_PACK, tmp_path)
    assert pack.errors == []
    assert pack.config == {"warn_percent": 95, "mounts": ["/"]}


def test_shipped_yaml_parses_with_plain_safe_loader() -> None:
    # Guard against anything that only our loader would accept.
    for path in [*BUILTIN_PACKS_DIR.rglob("*.yaml"), *EXAMPLES_PACK.rglob("*.yaml")]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
