"""docs/walkthrough.md cannot rot: its code blocks run in order against both services, the
shell blocks in bash (their variables carried on), the Python blocks as one script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

WALKTHROUGH = Path(__file__).parent.parent / "docs" / "walkthrough.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)


def blocks(system) -> list[tuple[str, str]]:
    text = WALKTHROUGH.read_text()
    text = text.replace("http://127.0.0.1:8000", system.sip_url)
    text = text.replace("http://127.0.0.1:8001", system.consent_url)
    # Whichever virtualenv runs the tests runs the walkthrough's `sip`.
    text = text.replace(".venv/bin/sip", f"{sys.executable} -m services.cli")
    return BLOCK.findall(text)


def run_shell(code: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Runs a shell block; returns the environment it leaves (its assignments exported)."""
    dump = cwd / "env.after"
    script = f"set -euo pipefail\nset -a\n{code}\nenv -0 > {dump}\n"
    done = subprocess.run(
        ["bash", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    pairs = (item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
    return dict(pairs)


def test_every_block_of_the_walkthrough_works(system, tmp_path, monkeypatch):
    env = {
        **os.environ,
        "SIP_DATA_DIR": str(system.backend.data_dir),  # where the development issuer's key is
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    for variable in ("SIP_DATABASE_URL", "CONSENT_DATABASE_URL", "SIP_KEY_DIR"):
        env.pop(variable, None)
    namespace: dict[str, object] = {"__name__": "walkthrough"}
    found = blocks(system)
    assert [kind for kind, _ in found].count("python") >= 8, "the walkthrough lost its steps"
    for kind, code in found:
        if kind == "sh":
            env = run_shell(code, env, tmp_path)
        else:
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            exec(compile(code, str(WALKTHROUGH), "exec"), namespace)
    plan = namespace["plan"]
    assert isinstance(plan, str)
    assert namespace["closed"]["status"] == "completed"
