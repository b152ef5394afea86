"""``gradfit serve``: the address it listens on, and what it says when it cannot."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from gradfit.cli.app import app

runner = CliRunner()


def test_a_port_in_use_is_refused_with_exit_2_and_how_to_choose_another():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port), "--quit-after", "1"])
    finally:
        taken.close()
    assert result.exit_code == 2
    assert f"Port {port} on 127.0.0.1 is in use" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def test_the_server_prints_its_address_and_stops_by_itself():
    result = runner.invoke(app, ["serve", "--port", "0", "--quit-after", "0.5"])
    assert result.exit_code == 0, result.output
    assert "gradfit playground: http://127.0.0.1:" in result.output and "beyond this machine" not in result.output


def test_which_addresses_count_as_this_machine():
    """Anything else gets the warning (tests listen on loopback only, so the rule is checked directly)."""
    from gradfit.cli.serve_cmd import _loopback

    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost") and _loopback("127.0.0.2")
    assert not _loopback("0.0.0.0") and not _loopback("192.168.1.5") and not _loopback("example.org")


def test_an_unknown_host_is_refused():
    result = runner.invoke(app, ["serve", "--host", "no.such.host.invalid", "--port", "0"])
    assert result.exit_code == 2 and "Cannot listen on no.such.host.invalid" in result.output
