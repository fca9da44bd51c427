"""The route table of the API (DESIGN.md section 5), prefix `/api/v1`: one entry per
operation with what the OpenAPI document says of it (summary, body and query schemas,
answer schema, error statuses; `server.route`), and `ROLES`, the least role of every
route (README, Security): a new route without a role fails at import. `server.app`
registers them and keeps the table in the app's state (`ROUTE_TABLE`), where
`server.openapi` finds what it describes and `server.auth` the role each route needs.
"""

from __future__ import annotations

from schemas.netrules import AclRuleSchema
from schemas.network import NetworkCreateRequest, NetworkModifyRequest, ReservationSchema
from schemas.node import ClusterConfigSchema
from schemas.operations import (
    ApplyRequest,
    DeleteQuery,
    NodeDomainStateRequest,
    VMDeleteQuery,
    VMListQuery,
    VMNodeRequest,
    VMRenameRequest,
    VMStateRequest,
)
from schemas.requests import VMDefineRequest, VMMetaRequest, VMModifyRequest
from schemas.rules import RuleCreateRequest
from schemas.storage import PoolSchema
from schemas.tokens import TokenCreateRequest
from schemas.vm import VMSchema
from schemas.volumes import VolumeSchema
from server import (
    apply,
    cluster_config,
    cluster_ops,
    history,
    metrics,
    node_handlers,
    openapi,
    rules,
    status,
    tokens,
    vm_handlers,
    vm_verbs,
    watch,
    whoami,
)
from server.consoles import console, figures, logs
from server.network import handlers as networks
from server.network import parts as netparts
from server.responses import (
    ApplyResult,
    ClusterStatus,
    DeleteResult,
    NodeDomainStateView,
    NodeList,
    NodeObject,
    VMList,
    VMMetaView,
    VMObject,
    VMPlacementView,
    VMStateView,
    WatchEvent,
)
from server.route import READ, WRITE, RoleTable, Route, with_roles
from server.route import api_route as _r
from server.storage import pools, volumedata, volumeops, volumes
from vocabulary import Role

_ROUTES: tuple[Route, ...] = (
    _r("GET", "/vm", vm_handlers.list_vms, "List VMs (no XML unless xml=true)", VMList,
       query=VMListQuery, errors=(*READ, 422)),
    _r("POST", "/vm", vm_handlers.define_vm, "Define a VM", VMObject, status=201,
       body=VMDefineRequest, errors=WRITE),
    _r("GET", "/vm/{vm}", vm_handlers.get_vm, "One VM", VMObject, errors=(*READ, 404, 422)),
    _r("POST", "/vm/{vm}", vm_handlers.modify_vm, "Modify a VM (only the fields given)",
       VMObject, body=VMModifyRequest, errors=(*WRITE, 404)),
    _r("PUT", "/vm/{vm}", vm_handlers.replace, "Replace a VM (or create it): "
       "metadata.resourceVersion, when given, must be current", VMObject, body=VMSchema,
       errors=(*WRITE, 404)),
    _r("DELETE", "/vm/{vm}", vm_handlers.delete_vm, "Delete a stopped VM (any VM with force)",
       DeleteResult, query=VMDeleteQuery, errors=(*WRITE, 404)),
    _r("GET", "/vm/{vm}/meta", vm_handlers.get_meta, "A VM's metadata", VMMetaView,
       errors=(*READ, 404, 422)),
    _r("POST", "/vm/{vm}/meta", vm_handlers.modify_meta, "Modify metadata (only the fields "
       "given)", VMMetaView, body=VMMetaRequest, errors=(*WRITE, 404)),
    _r("GET", "/vm/{vm}/state", vm_verbs.get_state, "Desired and observed state", VMStateView,
       errors=(*READ, 404, 422)),
    _r("POST", "/vm/{vm}/state", vm_verbs.set_state, "start, shutdown, stop, restart, disable",
       VMStateView, body=VMStateRequest, errors=(*WRITE, 404, 504)),
    _r("GET", "/vm/{vm}/node", vm_verbs.get_node, "Placement", VMPlacementView,
       errors=(*READ, 404, 422)),
    _r("POST", "/vm/{vm}/node", vm_verbs.set_node, "migrate, move, unmigrate", VMPlacementView,
       body=VMNodeRequest, errors=(*WRITE, 404, 504)),
    _r("GET", "/vm/{vm}/console", console.console, "The serial console: a WebSocket of "
       "bytes both ways to the VM's node (force=true takes over another session)", None,
       query=console.ConsoleQuery, errors=(*READ, 400, 404, 409, 422, 502),
       content_type="application/octet-stream"),
    _r("GET", "/vm/{vm}/vnc", console.vnc, "The graphics console: a WebSocket carrying the "
       "RFB (VNC) stream", None, errors=(*READ, 400, 404, 409, 422, 502),
       content_type="application/octet-stream"),
    _r("GET", "/vm/{vm}/log", logs.vm_log, "The console log (the last console_log_bytes "
       "its node keeps; follow=true streams on)", None, query=logs.LogQuery,
       errors=(*READ, 404, 409, 422, 502), content_type="application/octet-stream"),
    _r("GET", "/vm/{vm}/figures", figures.vm_figures, "Current CPU %, memory and I/O rates "
       "(from its node)", figures.VMFiguresAnswer, errors=(*READ, 404, 409, 422, 502)),
    _r("POST", "/vm/{vm}/rename", vm_handlers.rename, "Rename a stopped VM", VMObject,
       body=VMRenameRequest, errors=(*WRITE, 404)),
    _r("GET", "/node", node_handlers.list_nodes, "List nodes", NodeList),
    _r("GET", "/node/{node}", node_handlers.get_node, "One node", NodeObject,
       errors=(*READ, 404, 422)),
    _r("GET", "/node/{node}/figures", figures.node_figures, "Current CPU %, memory and I/O "
       "rates of the node's VMs, and their totals", figures.NodeFiguresAnswer,
       errors=(*READ, 404, 422, 502)),
    _r("GET", "/node/{node}/domain-state", node_handlers.get_domain_state,
       "Desired and observed domain state", NodeDomainStateView, errors=(*READ, 404, 422)),
    _r("POST", "/node/{node}/domain-state", node_handlers.set_domain_state, "flush or ready",
       NodeDomainStateView, body=NodeDomainStateRequest, errors=(*WRITE, 404, 504)),
    _r("POST", "/apply", apply.apply, "Apply VMs and Nodes atomically (dry_run: the diff)",
       ApplyResult, body=ApplyRequest, errors=WRITE),
    _r("GET", "/watch", watch.watch, "Stream change events (newline-delimited JSON)",
       WatchEvent, query=watch.WatchQuery, errors=(*READ, 410, 422),
       content_type="application/x-ndjson"),
    _r("GET", "/event", history.list_events, "The cluster's event log (by VM, kind): "
       "decisions of the primary, live migrations", history.EventList,
       query=history.EventQuery, errors=(*READ, 422)),
    _r("GET", "/status", status.cluster_status, "Cluster summary", ClusterStatus),
    _r("GET", "/openapi.json", openapi.openapi_json, "This document", None),
    _r("GET", "/metrics", metrics.metrics, "Prometheus metrics", None,
       content_type="text/plain"),
    _r("GET", "/config", cluster_config.get_config, "The cluster's defaults",
       cluster_config.ClusterConfigView),
    _r("POST", "/config", cluster_config.set_config, "Change cluster defaults (only the "
       "fields given)", cluster_config.ClusterConfigView, body=ClusterConfigSchema,
       errors=WRITE),
    _r("POST", "/rebalance", cluster_ops.rebalance_cluster, "Even the nodes out by live "
       "migrations (within limits and affinity rules); dryRun only plans",
       cluster_ops.RebalanceAnswer, body=cluster_ops.RebalanceRequest, errors=WRITE),
    _r("POST", "/maintenance", cluster_ops.set_maintenance, "Cluster maintenance on or off "
       "(while on, nothing is fenced or recovered)", cluster_ops.MaintenanceAnswer,
       body=cluster_ops.MaintenanceRequest, errors=WRITE),
    _r("GET", "/network", networks.list_networks, "List networks", networks.NetworkList),
    _r("POST", "/network", networks.create_network, "Add a network (a whole Network object)",
       networks.NetworkObject, status=201, body=NetworkCreateRequest, errors=WRITE),
    _r("GET", "/network/{net}", networks.get_network, "One network", networks.NetworkObject,
       errors=(*READ, 404, 422)),
    _r("POST", "/network/{net}", networks.modify_network, "Modify a network (only the spec "
       "fields given)", networks.NetworkObject, body=NetworkModifyRequest,
       errors=(*WRITE, 404)),
    _r("DELETE", "/network/{net}", networks.delete_network, "Remove a network (named by a "
       "VM: force)", networks.NetworkDeleted, query=DeleteQuery, errors=(*WRITE, 404)),
    _r("GET", "/network/{net}/lease", netparts.list_leases, "The network's DHCP leases",
       netparts.ItemList, errors=(*READ, 404, 422)),
    _r("GET", "/network/{net}/reservation", netparts.list_reservations, "DHCP reservations",
       netparts.ItemList, errors=(*READ, 404, 422)),
    _r("POST", "/network/{net}/reservation", netparts.add_reservation, "Reserve an IP for "
       "a MAC", netparts.ItemObject, status=201, body=ReservationSchema,
       errors=(*WRITE, 404)),
    _r("DELETE", "/network/{net}/reservation/{mac}", netparts.remove_reservation,
       "Remove a reservation", netparts.ItemObject, errors=(*WRITE, 404)),
    _r("GET", "/network/{net}/acl", netparts.list_rules, "Firewall rules, in order",
       netparts.ItemList, errors=(*READ, 404, 422)),
    _r("POST", "/network/{net}/acl", netparts.add_rule, "Add a firewall rule (nft syntax)",
       netparts.ItemObject, status=201, body=AclRuleSchema, errors=(*WRITE, 404)),
    _r("DELETE", "/network/{net}/acl/{rule}", netparts.remove_rule, "Remove a firewall rule",
       netparts.ItemObject, errors=(*WRITE, 404)),
    _r("GET", "/pool", pools.list_pools, "List storage pools", pools.PoolList),
    _r("POST", "/pool", pools.create_pool, "Add a storage pool (a whole Pool object)",
       pools.PoolObject, status=201, body=PoolSchema, errors=WRITE),
    _r("GET", "/pool/{pool}", pools.get_pool, "One storage pool", pools.PoolObject,
       errors=(*READ, 404, 422)),
    _r("DELETE", "/pool/{pool}", pools.delete_pool, "Remove a storage pool (its data stays)",
       pools.PoolDeleted, errors=(*WRITE, 404)),
    _r("GET", "/volume", volumes.list_volumes, "List volumes (by pool, node, vm)",
       pools.PoolList, query=volumes.VolumeQuery, errors=(*READ, 422)),
    _r("POST", "/volume", volumes.create_volume, "Create a volume (where it fits)",
       volumes.VolumeObject, status=201, body=VolumeSchema, errors=(*WRITE, 507)),
    _r("GET", "/volume/{pool}/{vol}", volumes.get_volume, "One volume, with its status",
       volumes.VolumeObject, errors=(*READ, 404, 422)),
    _r("POST", "/volume/{pool}/{vol}", volumeops.resize_volume, "Grow a volume (online "
       "when its VM runs)", volumes.VolumeObject, body=volumeops.ResizeRequest,
       errors=(*WRITE, 404, 507)),
    _r("POST", "/volume/{pool}/{vol}/clone", volumeops.clone_volume, "Copy a volume into a "
       "new one of the same pool", volumes.VolumeObject, status=201,
       body=volumeops.CloneRequest, errors=(*WRITE, 404, 507)),
    _r("DELETE", "/volume/{pool}/{vol}", volumes.delete_volume, "Delete a volume (its node "
       "removes the image)", volumes.VolumeDeleting, status=202, errors=(*WRITE, 404)),
    _r("PUT", "/volume/{pool}/{vol}/data", volumedata.upload, "Upload a volume's image file "
       "(streamed to its node's libvirt; Content-Length required)", volumedata.VolumeUploaded,
       raw_body=True, errors=(*WRITE, 404, 411, 502)),
    _r("GET", "/volume/{pool}/{vol}/data", volumedata.download, "Download a volume's image "
       "file (streamed from its node's libvirt)", None, errors=(*READ, 404, 409, 422, 502),
       content_type="application/octet-stream"),
    _r("GET", "/rule", rules.list_rules, "List affinity rules", rules.RuleList),
    _r("POST", "/rule", rules.create_rule, "Add an affinity rule: VMs kept together or apart "
       "(warnings: the VMs it names that do not exist yet)", rules.RuleCreated, status=201,
       body=RuleCreateRequest, errors=WRITE),
    _r("GET", "/rule/{rule}", rules.get_rule, "One affinity rule", rules.RuleObject,
       errors=(*READ, 404, 422)),
    _r("DELETE", "/rule/{rule}", rules.delete_rule, "Remove an affinity rule",
       rules.RuleDeleted, errors=(*WRITE, 404)),
    _r("GET", "/token", tokens.list_tokens, "List API tokens (never their secrets)",
       tokens.TokenList),
    _r("POST", "/token", tokens.create_token, "Create an API token: the secret is in this "
       "answer only", tokens.TokenCreated, status=201, body=TokenCreateRequest, errors=WRITE),
    _r("DELETE", "/token/{token}", tokens.revoke_token, "Revoke an API token (refused at "
       "once)", tokens.TokenRevoked, errors=(*WRITE, 404)),
    _r("GET", "/whoami", whoami.whoami, "The request's own token: name and role",
       whoami.WhoAmI),
)

VIEW, OPER, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN
ROLES: RoleTable = {
    ("GET", "/vm"): VIEW, ("POST", "/vm"): OPER,
    ("GET", "/vm/{vm}"): VIEW, ("POST", "/vm/{vm}"): OPER, ("PUT", "/vm/{vm}"): OPER,
    ("DELETE", "/vm/{vm}"): OPER,
    ("GET", "/vm/{vm}/meta"): VIEW, ("POST", "/vm/{vm}/meta"): OPER,
    ("GET", "/vm/{vm}/state"): VIEW, ("POST", "/vm/{vm}/state"): OPER,
    ("GET", "/vm/{vm}/node"): VIEW, ("POST", "/vm/{vm}/node"): OPER,
    ("POST", "/vm/{vm}/rename"): OPER,
    ("GET", "/vm/{vm}/console"): OPER, ("GET", "/vm/{vm}/vnc"): OPER,
    ("GET", "/vm/{vm}/log"): VIEW, ("GET", "/vm/{vm}/figures"): VIEW,
    ("GET", "/node/{node}/figures"): VIEW,
    ("GET", "/node"): VIEW, ("GET", "/node/{node}"): VIEW,
    ("GET", "/node/{node}/domain-state"): VIEW, ("POST", "/node/{node}/domain-state"): OPER,
    ("POST", "/apply"): OPER,
    ("GET", "/watch"): VIEW, ("GET", "/event"): VIEW, ("GET", "/status"): VIEW,
    ("GET", "/whoami"): VIEW,
    ("GET", "/openapi.json"): VIEW, ("GET", "/metrics"): VIEW,
    ("GET", "/config"): VIEW, ("POST", "/config"): ADMIN,
    ("POST", "/rebalance"): OPER, ("POST", "/maintenance"): ADMIN,
    ("GET", "/network"): VIEW, ("POST", "/network"): ADMIN,
    ("GET", "/network/{net}"): VIEW, ("POST", "/network/{net}"): ADMIN,
    ("DELETE", "/network/{net}"): ADMIN, ("GET", "/network/{net}/lease"): VIEW,
    ("GET", "/network/{net}/reservation"): VIEW, ("POST", "/network/{net}/reservation"): ADMIN,
    ("DELETE", "/network/{net}/reservation/{mac}"): ADMIN,
    ("GET", "/network/{net}/acl"): VIEW, ("POST", "/network/{net}/acl"): ADMIN,
    ("DELETE", "/network/{net}/acl/{rule}"): ADMIN,
    ("GET", "/pool"): VIEW, ("POST", "/pool"): ADMIN, ("GET", "/pool/{pool}"): VIEW,
    ("DELETE", "/pool/{pool}"): ADMIN,
    ("GET", "/volume"): VIEW, ("POST", "/volume"): OPER, ("GET", "/volume/{pool}/{vol}"): VIEW,
    ("DELETE", "/volume/{pool}/{vol}"): OPER, ("POST", "/volume/{pool}/{vol}"): OPER,
    ("POST", "/volume/{pool}/{vol}/clone"): OPER,
    ("PUT", "/volume/{pool}/{vol}/data"): OPER, ("GET", "/volume/{pool}/{vol}/data"): VIEW,
    ("GET", "/rule"): VIEW, ("POST", "/rule"): OPER, ("GET", "/rule/{rule}"): VIEW,
    ("DELETE", "/rule/{rule}"): OPER,
    ("GET", "/token"): ADMIN, ("POST", "/token"): ADMIN, ("DELETE", "/token/{token}"): ADMIN,
}
ROUTES: tuple[Route, ...] = with_roles(_ROUTES, ROLES)
