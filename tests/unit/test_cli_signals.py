"""The CLI's signal handlers: SIGTERM and Ctrl-C unwind the program like exceptions, and one that lands
inside a finaliser (``__del__``, where Python would print and drop it) is raised just after it instead."""

from __future__ import annotations

import os
import signal
import time

import pytest

from shardkit_cli import main as cli_main


@pytest.fixture()
def handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    cli_main.install_signal_handlers()
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    for s, h in saved.items():
        signal.signal(s, h)


def _wait(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.001)


class _SlowFinaliser:
    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        _wait(0.05)  # the handler runs in here


@pytest.mark.parametrize(("sig", "exc"), [(signal.SIGTERM, cli_main._Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_raises_where_the_program_is(handlers, sig, exc):
    with pytest.raises(exc):
        os.kill(os.getpid(), sig)
        _wait(1.0)


def test_a_signal_inside_a_finaliser_is_raised_after_it_not_lost(handlers, capsys):
    obj = _SlowFinaliser()
    with pytest.raises(cli_main._Terminated):
        del obj  # SIGTERM arrives inside __del__: deferred, not printed as "Exception ignored"
        _wait(1.0)
    assert "Exception ignored" not in capsys.readouterr().err
