"""The real VM: a Debian image built from Debian packages (:mod:`.image`), booted under qemu with
KVM where it can run the guest, else software emulation (:mod:`.machine`), and a Vagrant box made
from the same image (:mod:`.box`)."""
