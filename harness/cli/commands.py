"""The list of command groups ``ani`` exposes (each lives in its own module)."""

from harness.cli.campaign import campaign
from harness.cli.emulation import cleanup, controller, doctor
from harness.cli.generate import generate_cmd
from harness.cli.kg import kg
from harness.cli.llm import llm
from harness.cli.remote import remote
from harness.cli.run import run_cmd, sweep_cmd
from harness.cli.scenario import scenario
from harness.cli.topo import topo
from harness.cli.vm import vm

ALL = [topo, kg, scenario, run_cmd, sweep_cmd, generate_cmd, campaign, llm, controller, cleanup, doctor, remote, vm]
