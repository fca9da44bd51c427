"""herd-node's HTTP endpoint (issue #16): Prometheus metrics for anyone, and for herd-api
(signed tickets) the VMs' serial consoles, VNC streams, console logs and current figures.

- `server`: `NodeEndpoint`, the aiohttp server on `metrics_address`, its ticket check and
  the hand-over of a console log to the node a VM went to;
- `consoles`: the console and VNC WebSockets;
- `consolelogs`: the console logs virtlogd writes here, read, followed and handed over;
- `figures`: the VMs' current rates (CPU %, I/O) from two bulk stats samples.
Made by `reconciler.daemon.NodeDaemon`.
"""

from reconciler.endpoint.consolelogs import ConsoleLogs
from reconciler.endpoint.consoles import Consoles
from reconciler.endpoint.figures import Figures
from reconciler.endpoint.server import NodeEndpoint

__all__ = ["ConsoleLogs", "Consoles", "Figures", "NodeEndpoint"]
