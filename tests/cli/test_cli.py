"""basemap.cli: the commands, their choices (from the registries) and the exit codes."""

import click
import pytest
from click.testing import CliRunner

from basemap.cli import cli
from basemap.mosaic.composite import METHOD_NAMES
from basemap.output.media import TILE_FORMATS
from basemap.render.base import RENDERER_NAMES
from tests.support.cli_runner import run_cli

COMMANDS = {"search", "synth", "build", "demo", "tiles", "pmtiles", "plan", "world", "worker",
            "evaluate", "serve", "pairs", "train", "colorize"}


def _choices(command: click.Command, option: str) -> tuple:
    (param,) = [p for p in command.params if option in p.opts]
    return tuple(param.type.choices)


def test_every_command_is_there():
    assert set(cli.commands) == COMMANDS
    assert set(cli.commands["world"].commands) == {"run", "pyramid"}


@pytest.mark.parametrize("name", ["build", "demo"])
def test_choices_come_from_the_registries(name):
    command = cli.commands[name]
    assert _choices(command, "--renderer") == RENDERER_NAMES
    assert _choices(command, "--composite") == METHOD_NAMES
    assert _choices(command, "--tile-format") == tuple(TILE_FORMATS)
    assert _choices(cli.commands["colorize"], "--renderer") == RENDERER_NAMES


def test_world_run_takes_the_block_size_of_its_plan():
    run = cli.commands["world"].commands["run"]
    assert not [p for p in run.params if "--block-size" in p.opts]
    plan = [p for p in cli.commands["plan"].params if "--block-size" in p.opts][0]
    build = [p for p in cli.commands["build"].params if "--block-size" in p.opts][0]
    assert plan.default == build.default == 2048


def test_help_and_version():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0 and all(c in result.output for c in COMMANDS)
    assert "0.1.0" in CliRunner().invoke(cli, ["--version"]).output


@pytest.mark.parametrize(("args", "code", "message"), [
    (["build", "--bbox", "1,2,3", "--out", "x"], 2, "four numbers"),
    (["plan", "--world", "--bbox", "1,2,3,4"], 2, "either --world"),
    (["world", "run", "missing.json", "--out", "x"], 2, "not a shard plan"),
    (["nope"], 2, "No such command"),
])
def test_usage_errors_exit_2(args, code, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    got, out, err = run_cli(args, monkeypatch, capsys)
    assert got == code and message in out + err
