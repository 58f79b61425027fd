"""Probe parsing (pure) and the emulation CLI commands."""

from click.testing import CliRunner

from harness.twin.emulation.probes import parse_ping

PING = """PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.
[100.000] 64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=1.00 ms
[100.050] 64 bytes from 10.0.0.2: icmp_seq=2 ttl=64 time=2.00 ms
[100.150] no answer yet for icmp_seq=3
[100.200] no answer yet for icmp_seq=4
[100.250] 64 bytes from 10.0.0.2: icmp_seq=5 ttl=64 time=3.00 ms

--- 10.0.0.2 ping statistics ---
5 packets transmitted, 3 received, 40% packet loss, time 250ms
"""


def test_parse_ping():
    s = parse_ping(PING, "A", "B", 0.05, 99.99, 100.26)
    assert s.sent == 5 and s.received == 3
    assert s.loss_pct == 40.0
    assert s.rtts_ms == [1.0, 2.0, 3.0]
    assert abs(s.longest_gap() - 0.2) < 1e-9
    assert abs(s.longest_gap(after=100.1) - 0.2) < 1e-9
    assert s.summary()["rtt_ms_mean"] == 2.0


def test_parse_ping_never_recovers():
    s = parse_ping(PING.split("[100.250]")[0], "A", "B", 0.05, 99.99, 101.0)
    assert abs(s.longest_gap(after=100.1) - 0.95) < 1e-9


def test_doctor_and_cleanup_commands():
    from harness.cli.emulation import cleanup, doctor

    r = CliRunner().invoke(doctor)
    assert "root" in r.output and "netem" in r.output
    r = CliRunner().invoke(cleanup)
    assert r.exit_code == 0, r.output
