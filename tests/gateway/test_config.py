"""Gateway configuration: TOML registry, flags, errors naming line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from events_trio.core.errors import ConfigError
from events_trio.gateway.config import (
    GatewayConfig,
    ProjectConfig,
    SinkSpec,
    load_config,
    parse_project_flag,
    parse_sink_flag,
)
from events_trio.gateway.poller import PollerSettings

EXAMPLE = """\
[gateway]
port = 7081
state_dir = "state"
poll_interval_s = 3

[[project]]
name = "billing"
url = "http://127.0.0.1:7070/"
token = "s3cret"

[[project]]
name = "search"
url = "http://127.0.0.1:7071"
poll_interval_s = 5

[[sink]]
kind = "webhook"
url = "https://chat.example/hooks/abc"
group_window_s = 1.5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_toml_file_gives_projects_sinks_and_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))
    assert config.projects == (
        ProjectConfig("billing", "http://127.0.0.1:7070", "s3cret"),
        ProjectConfig("search", "http://127.0.0.1:7071", None, 5.0),
    )
    assert config.sinks == (SinkSpec("webhook", "https://chat.example/hooks/abc", 1.5),)
    assert (config.port, config.state_dir, config.poll.interval_s) == (7081, Path("state"), 3.0)


def test_project_token_is_not_in_its_repr() -> None:
    assert "s3cret" not in repr(ProjectConfig("billing", "http://x", "s3cret"))


def test_bad_url_error_names_file_line_and_project(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('"http://127.0.0.1:7071"', '"ftp://x"'))
    with pytest.raises(
        ConfigError,
        match=rf"^{path}:13: project 'search': url must start with http:// or https://$",
    ):
        load_config(path)


def test_missing_url_error_names_the_project_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[[project]]\nname = "billing"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:1: project #1: missing 'url'$"):
        load_config(path)


def test_unknown_key_error_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[project]]\nname = "b"\nurl = "http://x"\ncolour = "red"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:4: unknown key 'colour' in \[project\]$"):
        load_config(path)


def test_wrong_type_error_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nport = "80"\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: gateway.port: wrong type str$"):
        load_config(path)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[gateway\nport = 1\n")
    with pytest.raises(ConfigError, match=rf"^{path}: .*line 1"):
        load_config(path)


def test_duplicate_project_names_are_refused(tmp_path: Path) -> None:
    text = '[[project]]\nname = "b"\nurl = "http://x"\n[[project]]\nname = "b"\nurl = "http://y"\n'
    with pytest.raises(ConfigError, match=r"project name 'b' is defined twice$"):
        load_config(write(tmp_path, text))


def test_project_flag_is_name_equals_url() -> None:
    assert parse_project_flag("billing=http://h:1/") == ProjectConfig("billing", "http://h:1")


def test_project_flag_without_equals_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^--project 'billing': expected NAME=URL$"):
        parse_project_flag("billing")


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("console", SinkSpec("console")),
        ("jsonl:out/events.jsonl", SinkSpec("jsonl", "out/events.jsonl")),
        ("webhook:https://chat/x", SinkSpec("webhook", "https://chat/x")),
    ],
)
def test_sink_flag_kinds(text: str, spec: SinkSpec) -> None:
    assert parse_sink_flag(text) == spec


def test_unknown_sink_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^--sink 'slack': expected console"):
        parse_sink_flag("slack:x")


def test_default_sink_is_console() -> None:
    assert GatewayConfig().sinks == (SinkSpec("console"),)


def test_public_url_must_be_http_and_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nport = 7080\npublic_url = "events.example.com"\n')
    with pytest.raises(
        ConfigError,
        match=rf"^{path}:1: \[gateway\]: public_url must start with http:// or https://$",
    ):
        load_config(path)


def test_admin_token_comes_from_the_gateway_table_and_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nadmin_token = "s3cret-admin"\n')
    config = load_config(path)
    assert config.admin_token == "s3cret-admin"
    assert "s3cret-admin" not in repr(config)


def test_commit_window_and_stream_idle_deadline_come_from_the_gateway_table(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, "[gateway]\ncommit_window_ms = 25\nstream_idle_s = 60\n"))
    project = ProjectConfig("billing", "http://127.0.0.1:7070")
    assert config.commit_window_s == pytest.approx(0.025)
    assert PollerSettings.for_project(config, project).idle_s == 60.0
    defaults = PollerSettings.for_project(GatewayConfig(), project)
    assert (GatewayConfig().commit_window_s, defaults.idle_s) == (0.01, 45.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("commit_window_ms = 5000", r"\[gateway\]: commit_window_ms must be 0..1000, got 5000"),
        ("commit_window_ms = -1", r"\[gateway\]: commit_window_ms must be 0..1000, got -1"),
        ('commit_window_ms = "fast"', r"gateway.commit_window_ms: wrong type str"),
        ("stream_idle_s = 0", r"\[gateway\]: stream_idle_s must be at least 1, got 0"),
    ],
)
def test_bad_commit_window_or_idle_deadline_is_refused_with_its_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path, f"[gateway]\nport = 7080\n{line}\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: {message}$"):
        load_config(path)
