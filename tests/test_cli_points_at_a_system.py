"""The commands that read an existing system refuse a data folder that holds none, naming
the folder they looked in and how to point them elsewhere: a new key or an empty database
made there would mislead (tokens every service rejects, "intact, 0 events" about the wrong
folder). Nothing is created where they looked."""

from __future__ import annotations

import pytest

from services.cli import main

READING_COMMANDS = [
    ["audit", "verify"],
    ["audit", "replay", "--plan", "00000000-0000-0000-0000-000000000000"],
    ["audit", "export", "--patient", "191212121212", "--out", "x.json"],
    ["projections", "status"],
    ["projections", "rebuild", "--check"],
]


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    for variable in ("SIP_DATABASE_URL", "CONSENT_DATABASE_URL", "SIP_KEY_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "not-a-system"


@pytest.mark.parametrize("command", READING_COMMANDS, ids=" ".join)
def test_a_reading_command_refuses_a_folder_without_a_system(nowhere, command, capsys):
    assert main([*command, "--data-dir", str(nowhere)]) == 1
    refusal = capsys.readouterr().err
    assert f"no SIP system in {nowhere}" in refusal
    assert "--data-dir" in refusal and "SIP_DATA_DIR" in refusal
    assert not nowhere.exists()


def test_sip_token_refuses_a_folder_without_the_development_issuers_key(nowhere, capsys):
    arguments = ["token", "--role", "coordinator", "--org", "SE2321000032-DEMO1"]
    assert main([*arguments, "--data-dir", str(nowhere)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no token that no service would accept
    assert f"no development issuer key in {nowhere}" in captured.err
    assert not nowhere.exists()


@pytest.mark.parametrize(
    "command",
    [["up"], ["token"], ["migrate"], ["audit", "verify"], ["audit", "replay"],
     ["audit", "export"], ["projections", "rebuild"], ["projections", "status"]],
    ids=" ".join,
)  # fmt: skip
def test_each_command_says_what_it_does_with_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    shown = capsys.readouterr().out
    assert "example:" in shown
    assert f"sip {' '.join(command)}" in shown.split("example:", 1)[1]
