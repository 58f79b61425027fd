"""How much probing the machine under the emulation can carry, chosen by what it is.

The probes are one ``ping`` process per monitored pair (:mod:`.probes`); their cost is per
process wake-up, not per byte, so a machine that runs every instruction in software (qemu
without KVM, "TCG") cannot carry the defaults sized on a real 2-core host. Measured on
``topozoo/Abilene`` (``scenarios/abilene/fiber_cut.yaml``, 11 routers, 110 flows), 2 vCPUs
under qemu 7.2 TCG on this host kind (docs/vm.md, 2026-12-05):

==================================  =============  ==============  ============
probes (pairs, interval, fast)      baseline loss  probe loss      latency mean
==================================  =============  ==============  ============
110 pairs, 40 ms, 16 fast (native)  55.4 %         (load avg 12)   658 ms
110 pairs, 40 ms, 16 fast, bg 300   100 % / 31 %   31.9 %          26.0 ms
20 pairs, 100 ms, 4 fast            0.24 %         0.0 %           11.27 ms
12 pairs, 200 ms, 2 fast            0.0 %          0.0 %           12.23 ms
==================================  =============  ==============  ============

The background traffic is the other load, and the one that decides how much a busy host can take
away from the VM. Measured 2026-12-06 with ``benchmarks/vm_load.py`` (same scenario, 20 pairs at
100 ms, 4 fast; "VM idle": the median share of the VM's CPU left idle over the run's seconds;
"one host hog": one busy-looping process on the host beside the VM; loss of both attempts when
the first was unhealthy, over the 0.5 % limit):

================================  ========  =============  =====================================
background budget (pps sent)      VM idle   baseline loss  with one host hog
================================  ========  =============  =====================================
5,000 (native; 2,040 sent)        11 %      0.0 %          57.6 / 53.1 %; 51.8 / 53.9 % (2 runs)
600 (641 sent)                    14 %      0.0 %          2.85 / 0.32 %; 4.2 / 4.2 %
300 (420 sent, this profile)      26 %      0.0 %          2.20 / 0.81 %; 0.36 %
================================  ========  =============  =====================================

(the budget scales the matrix and the links' shaping alike, so utilisations stay the knowledge
graph's; the 420 include the monitored pairs' 10 pps floors). A CI run whose host was busy saw
38 % baseline loss in both attempts with the 5,000 budget; at 300 a busy host still costs a few
percent in the worst case measured, not half the traffic.

(the flow twin's baseline latency on the 20 sampled pairs is 10.01 ms, on all 110 flows 11.53 ms;
the emulation's mean includes queueing behind background frames on links shaped 1000x slower:
each pair's smallest RTT/2 averages 10.5-10.7 ms, see :func:`.twin.latency_note`). On the host itself the
native defaults gave 45/45 healthy baselines in the fidelity suite (README).

:func:`detect` asks ``systemd-detect-virt``, which says ``qemu`` for QEMU without KVM (and
``kvm``, ``docker``, ``none``, … otherwise); only then the lighter profile applies.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProbeProfile:
    name: str
    probe_interval_s: float
    max_pairs: int
    max_fast_pairs: int
    #: the background traffic's packet budget (None: the twin's default,
    #: :data:`~harness.twin.emulation.background.DEFAULT_MAX_PPS`)
    background_max_pps: float | None = None

    def record(self) -> dict:
        return asdict(self)


NATIVE = ProbeProfile("native", probe_interval_s=0.04, max_pairs=132, max_fast_pairs=16)
SOFTWARE_EMULATED = ProbeProfile("software-emulated", probe_interval_s=0.1, max_pairs=20, max_fast_pairs=4,
                                 background_max_pps=300.0)


@functools.lru_cache(maxsize=1)
def virtualisation() -> str:
    """``systemd-detect-virt``'s answer (``none`` without a hypervisor, ``unknown`` if absent)."""
    if not shutil.which("systemd-detect-virt"):
        return "unknown"
    r = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True)
    return r.stdout.strip() or "none"


def detect() -> ProbeProfile:
    return SOFTWARE_EMULATED if virtualisation() == "qemu" else NATIVE
