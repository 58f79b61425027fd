"""``ani remote``: run campaigns and ``ani doctor`` on another machine over SSH (or in the Vagrant VM)."""

from __future__ import annotations

import functools

import click

from harness.cli.output import json_option, print_json
from harness.errors import RemoteError


def _connection_options(fn):
    options = [
        click.option("--host", help="SSH host name or address (or use --vagrant)."),
        click.option("--port", type=click.IntRange(1, 65535), default=None, help="SSH port (default 22)."),
        click.option("--user", help="Remote user (default: your user name; the VM's with --vagrant)."),
        click.option("--key", type=click.Path(dir_okay=False), help="Private key file (default: agent, ~/.ssh keys)."),
        click.option("--vagrant", is_flag=True,
                     help="Connect to the VM of the Vagrantfile here, as `vagrant ssh-config` describes it."),
        click.option("--vm", is_flag=False, flag_value="default", default=None, metavar="[NAME]",
                     help="Connect to the VM `ani vm up` started (NAME, default 'default'), with its own key "
                          "and recorded host key."),
        click.option("--known-hosts", type=click.Path(dir_okay=False),
                     help="Known-hosts file to check the host key against (default ~/.ssh/known_hosts)."),
        click.option("--accept-new-host-key", is_flag=True,
                     help="Record an unknown host key in known_hosts instead of refusing it (a changed key is "
                          "always refused)."),
        click.option("--remote-ani", default="ani", show_default=True, metavar="PATH",
                     help="ani on the remote; `ani` also tries ~/ani/.venv/bin/ani and /vagrant/.venv/bin/ani, /opt/ani/.venv/bin/ani."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _host(host, port, user, key, vagrant, vm, known_hosts, accept_new_host_key):
    from harness.remote import RemoteHost, vagrant_target

    if vm is not None:
        if host or vagrant:
            raise RemoteError("--vm excludes --host and --vagrant")
        from harness.vm.machine import running

        return running(vm).host()
    if vagrant:
        if host:
            raise RemoteError("--vagrant and --host exclude each other")
        target = vagrant_target()
        host, port = target.host, port or target.port
        user, key = user or target.user, key or target.key
    elif not host:
        raise RemoteError("say where to run: --host HOST (or --vagrant, or --vm)")
    return RemoteHost(host, port=port or 22, user=user, key=key, accept_new_host_key=accept_new_host_key,
                      known_hosts=known_hosts)


@click.group()
def remote() -> None:
    """Run campaigns on SSH hosts and Vagrant VMs."""


@remote.command("run")
@click.argument("spec", type=click.Path(dir_okay=False, exists=True))
@_connection_options
@click.option("--remote-dir", metavar="DIR", help="Working directory on the remote (default ~/ani-remote/NAME).")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Local copy of the campaign "
              "(default campaigns/NAME).")
@json_option("Print what was copied back as one JSON document (the remote's output goes to stderr).")
def run_cmd(spec, host, port, user, key, vagrant, vm, known_hosts, accept_new_host_key, remote_ani, remote_dir, output,
            as_json):
    """Run the campaign SPEC on a remote host, stream its output, copy the results back.

    A dropped connection is re-established and the remote run re-attached (or resumed if it
    died); running the same command again resumes an unfinished remote campaign.
    """
    from harness.remote import run_remote_campaign

    with _host(host, port, user, key, vagrant, vm, known_hosts, accept_new_host_key) as rh:
        done = run_remote_campaign(spec, rh, remote_dir=remote_dir, output=output, remote_ani=remote_ani,
                                   on_line=functools.partial(click.echo, err=as_json))
    if as_json:
        print_json({"remote": rh.host, "remote_dir": done.remote_dir, "local_dir": str(done.local_dir),
                    "files": done.files, "reconnects": done.reconnects, "resumes": done.resumes})
        return
    click.echo(f"copied {done.files} files from {rh.host}:{done.remote_dir}/campaign to {done.local_dir}"
               + (f" ({done.reconnects} reconnect(s), {done.resumes} resume(s))" if done.reconnects or done.resumes
                  else ""))


@remote.command("doctor")
@_connection_options
@click.option("--sudo", is_flag=True, help="Run it with `sudo -n`, as campaigns with the emulation twin are.")
@json_option("Print the connection facts and the remote doctor's checks as one JSON document.")
def doctor_cmd(host, port, user, key, vagrant, vm, known_hosts, accept_new_host_key, remote_ani, sudo, as_json):
    """Run `ani doctor` on the remote host; exit with its status."""
    from harness.remote import remote_doctor

    with _host(host, port, user, key, vagrant, vm, known_hosts, accept_new_host_key) as rh:
        rc, text = remote_doctor(rh, remote_ani=remote_ani, sudo=sudo, as_json=as_json)
    click.echo(text.rstrip("\n"))
    if rc != 0:
        raise SystemExit(rc)
