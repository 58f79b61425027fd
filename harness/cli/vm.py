"""``ani vm``: build the Debian VM image, boot it, reach it, stop it (and make a Vagrant box of it)."""

from __future__ import annotations

import os
import time

import click

from harness.cli.output import json_option, print_json

NAME = click.option("-n", "--name", default="default", show_default=True, help="Which VM (several can run at once).")


def _emit(line: str) -> None:
    click.echo(line, err=True)


def _record(v) -> dict:
    return {"name": v.name, "pid": v.pid, "accel": v.accel, "accel_note": v.accel_note, "cpus": v.cpus,
            "memory_mib": v.memory_mib, "image": v.image, "ssh_host": "127.0.0.1", "ssh_port": v.port,
            "started": v.started, "boot_s": v.boot_s}


@click.group("vm")
def vm() -> None:
    """A real Debian VM (qemu; KVM where it can run the guest, else software emulation) in which
    the emulation twin has the kernel datapath and netem."""


@vm.command("build")
@click.option("--mirror", metavar="URL", help="Debian mirror (default: the one this machine's apt uses).")
@click.option("--force", is_flag=True, help="Rebuild even if the image for these inputs is cached.")
def build_cmd(mirror, force):
    """Build the image from Debian packages (cached; rebuilt only when its inputs change)."""
    from harness.vm import image

    img = image.build(image.recipe(mirror), force=force, emit=_emit)
    click.echo(img.dir)


@vm.command("up")
@NAME
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
              help="KVM, software emulation (tcg), or KVM when this host can run the guest with it.")
@click.option("--cpus", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--memory", type=click.IntRange(512, 262144), default=4096, show_default=True, help="MiB.")
@json_option("Print the VM's record (pid, port, accelerator, …) as one JSON document.")
def up_cmd(name, accel, cpus, memory, as_json):
    """Boot the VM (building the image first if needed) and copy this checkout into it."""
    from harness.vm import machine

    v = machine.up(name, accel=accel, cpus=cpus, memory_mib=memory, emit=_emit)
    if as_json:
        print_json({"state": "running", **_record(v)})
        return
    click.echo(f"{v.name}: running, {v.accel}, ssh root@127.0.0.1 -p {v.port} (or `ani vm ssh" + ("" if v.name == "default" else f" -n {v.name}") + "`)")


@vm.command("status")
@NAME
@json_option("Print the state (and the VM's record when there is one) as one JSON document.")
def status_cmd(name, as_json):
    """Is the VM running, how and where (exit 3 when it is not running)."""
    from harness.errors import RemoteError
    from harness.vm import machine

    v = machine.load(name)
    if v is None or not v.alive():
        if as_json:
            print_json({"name": name, "state": "not running" if v is None else "stopped",
                        **({} if v is None else _record(v))})
        elif v is None:
            click.echo(f"{name}: not running")
        else:
            click.echo(f"{name}: stopped (qemu pid {v.pid} gone); `ani vm down -n {name}` removes what is left")
        raise SystemExit(3)
    try:
        with v.host() as h:
            ssh = "answers" if h.run(["true"], timeout=20).rc == 0 else "fails"
    except RemoteError as exc:
        ssh = f"not answering ({exc})"
    up_for = time.time() - v.started
    if as_json:
        print_json({"state": "running", **_record(v), "up_s": round(up_for, 1), "ssh": ssh})
        return
    click.echo(f"{name}: running for {up_for:.0f} s, qemu pid {v.pid}, {v.accel} ({v.accel_note}), "
               f"{v.cpus} CPUs, {v.memory_mib} MiB, image {v.image}, SSH 127.0.0.1:{v.port} {ssh}")


@vm.command("ssh", context_settings={"ignore_unknown_options": True})
@NAME
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_cmd(name, command):
    """Open a root shell in the VM, or run COMMAND there (`ani vm ssh -- CMD ARGS…`)."""
    from harness.vm import machine

    v = machine.running(name)
    argv = v.ssh_argv(list(command))
    os.execvp(argv[0], argv)


@vm.command("down")
@NAME
def down_cmd(name):
    """Stop the VM and remove its overlay disk and record."""
    from harness.vm import machine

    click.echo(f"{name}: stopped and removed" if machine.down(name) else f"{name}: was not running")


@vm.command("box")
@click.option("--add", "add", is_flag=True, help="Also `vagrant box add` it as ani-local.")
def box_cmd(add):
    """Make a Vagrant box (vagrant-libvirt) of the image, building the image first if needed."""
    from harness.vm import box, image

    img = image.find() or image.build(emit=_emit)
    path = box.make_box(img, emit=_emit)
    if add:
        box.add_box(path)
        click.echo(f"added box {box.BOX_NAME}: ANI_VM_BOX={box.BOX_NAME} vagrant up --provider libvirt")
    else:
        click.echo(path)
