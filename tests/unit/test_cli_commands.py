"""The CLI's lazily loaded commands: every listed one loads, under its own name, and the help
lists them without importing any command module."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from stylestream.cli import COMMANDS, main


def test_every_command_loads_under_its_name() -> None:
    ctx = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert main.get_command(ctx, "nope") is None


def test_help_lists_every_command_and_loads_none() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output
    probe = "import sys; from stylestream.cli import main; print(sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "stylestream.cli.run" not in loaded.stdout and "faust" not in loaded.stdout


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2 and "No such command" in result.output
