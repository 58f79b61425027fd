"""Running ani elsewhere: SSH hosts and Vagrant VMs (:mod:`.ssh`), Dask clusters (:mod:`.dask_dispatch`)."""

from harness.remote.ssh import (RemoteHost, RemoteRun, SSHTarget, parse_ssh_config, remote_doctor,
                                run_remote_campaign, vagrant_target)

__all__ = ["RemoteHost", "RemoteRun", "SSHTarget", "parse_ssh_config", "remote_doctor", "run_remote_campaign",
           "vagrant_target"]
