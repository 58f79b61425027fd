"""Running ani elsewhere: SSH hosts and Vagrant VMs (:mod:`.connection`), campaigns run detached on
them (:mod:`.campaign`), Dask clusters (:mod:`.dask_dispatch`). Needs the ``remote`` extra."""

from harness.extras import require

require("paramiko", "running ani over SSH (ani remote, ani vm)")

from harness.remote.detached import RemoteRun, run_remote_campaign
from harness.remote.connection import RemoteHost, SSHTarget, parse_ssh_config, remote_doctor, vagrant_target

__all__ = ["RemoteHost", "RemoteRun", "SSHTarget", "parse_ssh_config", "remote_doctor", "run_remote_campaign",
           "vagrant_target"]
