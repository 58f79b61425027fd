"""Launch the ani controller: ``python -m controllers.run --topology-file F --ofp-port N --api-port M``.

os-ken 4.x has no ``osken-manager``: this imports the option-registering modules, parses
os-ken's configuration, fills :data:`controllers.ani_controller.SETTINGS` and runs the app
(blocks until killed).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="controllers.run", description=__doc__.splitlines()[0])
    ap.add_argument("--topology-file", required=True)
    ap.add_argument("--ofp-port", type=int, default=6653)
    ap.add_argument("--api-port", type=int, default=8080)
    ap.add_argument("--stats-interval", type=float, default=1.0)
    ap.add_argument("--tag", default="ani", help="marker so `ani cleanup` can find this process")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager  # imports os_ken.controller.controller,
    import os_ken.controller.controller  # noqa: F401  which registers --ofp-tcp-listen-port

    from controllers import ani_controller

    cfg.CONF(args=["--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", str(args.ofp_port)],
             project="os_ken")
    ani_controller.SETTINGS.update(topology_file=args.topology_file, api_port=args.api_port,
                                   stats_interval=args.stats_interval)
    # The controller holds no state worth flushing; os-ken's own shutdown path is broken
    # in 4.2.2 (HubThread has no kill()), so leave at once on SIGTERM/SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    AppManager.run_apps(["controllers.ani_controller"])


if __name__ == "__main__":
    main()
