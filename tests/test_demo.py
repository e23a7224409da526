"""``python -m brama_async demo``: a short run, its output, options and Ctrl-C."""

import io
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from itertools import pairwise

import pytest

from brama_async.__main__ import main
from brama_async._demo import PATTERNS, DemoConfig, run_demo

DEMO = [sys.executable, "-m", "brama_async", "demo"]


def test_short_run_prints_transitions_and_a_summary():
    """A 2.5 s run opens the circuit, refuses calls and exits 0."""
    result = subprocess.run(
        [*DEMO, "--duration", "2.5", "--seed", "3", "--pattern", "errors"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    output = result.stdout
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = output.splitlines()
    assert lines[0].startswith("brama_async demo: pattern 'errors', seed 3, 2.5 s")
    assert re.search(r"\d+\.\d\ds  service   error burst", output)
    opened = [line for line in lines if re.search(r"closed -> open\s", line)]
    assert opened, output
    assert "half-open at" in opened[0]
    assert "trip 1" in opened[0]
    refused = re.search(r"refused at once\s+(\d+)", output)
    assert refused is not None, output
    assert int(refused.group(1)) > 0
    assert re.search(
        r"errors [\d.]+-[\d.]+ s\s+(closed again|still not closed)", output
    )


def test_outage_shows_progressive_expiry():
    """Consecutive opens during one outage last longer and longer."""
    out = io.StringIO()

    report = run_demo(DemoConfig(duration=2.0, seed=5, pattern="outage"), out=out)

    text = out.getvalue()
    trips = [int(n) for n in re.findall(r"trip (\d+)\)", text)]
    waits = [float(w) for w in re.findall(r"\(open ([\d.]+) s, trip", text)]
    assert trips[:3] == [1, 2, 3]
    assert waits[:3] == [0.1, 0.2, 0.4]
    assert report.refused > 0
    assert report.admitted + report.refused <= report.calls
    assert report.served["errors"] < report.calls / 2
    assert ("closed", "open") in [(prev, new) for _, prev, new in report.transitions]


def test_every_pattern_fills_the_duration():
    """Each pattern's phases are contiguous and cover the whole run."""
    for name in PATTERNS:
        phases = DemoConfig(duration=20.0, seed=7, pattern=name).schedule()

        assert phases[0].start == 0.0
        assert phases[-1].end == pytest.approx(20.0)
        assert all(a.end == b.start for a, b in pairwise(phases))
        assert {p.kind for p in phases} >= {"healthy"}


def test_help_explains_the_options(capsys):
    """``demo --help`` names every option and pattern, then exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])

    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for word in ["--duration", "--seed", "--pattern", "Ctrl-C", *PATTERNS]:
        assert word in out


def test_bad_arguments_are_usage_errors(capsys):
    """A duration out of range or no command exits with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--duration", "0"])

    assert exit_info.value.code == 2
    assert "duration must be between" in capsys.readouterr().err
    assert main([]) == 2


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_cleanly():
    """SIGINT stops the demo: summary so far, a short message, status 130."""
    process = subprocess.Popen(
        [*DEMO, "--duration", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()
    time.sleep(0.5)

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)

    assert process.returncode == 130
    assert "Traceback" not in err
    assert "interrupted, demo stopped" in err
    assert re.search(r"summary after [\d.]+ s, interrupted", out)


def test_console_script_points_at_main():
    """The ``brama-async`` command runs the same ``main``."""
    scripts = entry_points(group="console_scripts", name="brama-async")
    if not scripts:
        pytest.skip("brama-async is not installed as a console script")

    (script,) = scripts
    assert script.value == "brama_async.__main__:main"
