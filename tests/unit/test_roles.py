"""The role of every route: each operation of the OpenAPI document declares one, and each
role may use exactly the routes at or below it (enumerated here, so a route that changes
role, or a new one, changes this file). Also the role table's own checks."""

from __future__ import annotations

import pytest

from server.config import ServerConfig
from server.openapi import build
from server.route import PREFIX, with_roles
from server.routes import ROLES, ROUTES
from vocabulary import Role

VIEWER_ROUTES = {
    "GET /vm", "GET /vm/{vm}", "GET /vm/{vm}/meta", "GET /vm/{vm}/state", "GET /vm/{vm}/node",
    "GET /node", "GET /node/{node}", "GET /node/{node}/domain-state", "GET /watch",
    "GET /event", "GET /status", "GET /openapi.json", "GET /metrics", "GET /config",
    "GET /network", "GET /network/{net}", "GET /network/{net}/lease",
    "GET /network/{net}/reservation", "GET /network/{net}/acl", "GET /pool", "GET /pool/{pool}",
    "GET /volume", "GET /volume/{pool}/{vol}", "GET /volume/{pool}/{vol}/data",
    "GET /vm/{vm}/log", "GET /vm/{vm}/figures", "GET /node/{node}/figures",
    "GET /rule", "GET /rule/{rule}", "GET /whoami",
}
OPERATOR_ROUTES = VIEWER_ROUTES | {
    "POST /vm", "POST /vm/{vm}", "PUT /vm/{vm}", "DELETE /vm/{vm}", "POST /vm/{vm}/meta",
    "POST /vm/{vm}/state", "POST /vm/{vm}/node", "POST /vm/{vm}/rename",
    "POST /node/{node}/domain-state", "POST /apply", "POST /volume",
    "DELETE /volume/{pool}/{vol}", "POST /volume/{pool}/{vol}", "POST /volume/{pool}/{vol}/clone",
    "PUT /volume/{pool}/{vol}/data", "GET /vm/{vm}/console", "GET /vm/{vm}/vnc",
    "POST /rebalance",
    "POST /rule", "DELETE /rule/{rule}",
}
ADMIN_ROUTES = OPERATOR_ROUTES | {
    "POST /config", "GET /token", "POST /token", "DELETE /token/{token}", "POST /maintenance",
    "POST /network", "POST /network/{net}", "DELETE /network/{net}",
    "POST /network/{net}/reservation", "DELETE /network/{net}/reservation/{mac}",
    "POST /network/{net}/acl", "DELETE /network/{net}/acl/{rule}",
    "POST /pool", "DELETE /pool/{pool}"}
EXPECTED = {Role.VIEWER: VIEWER_ROUTES, Role.OPERATOR: OPERATOR_ROUTES,
            Role.ADMIN: ADMIN_ROUTES}


def _documented() -> dict[str, Role]:
    doc = build(ServerConfig(), ROUTES)
    return {f"{method.upper()} {path.removeprefix(PREFIX)}": Role(op["x-herd-role"])
            for path, ops in doc["paths"].items() for method, op in ops.items()}


def test_every_route_of_the_openapi_document_declares_a_role() -> None:
    documented = _documented()
    assert len(documented) == len(ROUTES) == len(ROLES)
    assert set(documented) == ADMIN_ROUTES


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_use_exactly_the_routes_at_or_below_it(role: Role) -> None:
    allowed = {route for route, needed in _documented().items() if role.allows(needed)}
    assert allowed == EXPECTED[role]


# GETs that are not reads: the token list (admin), and the interactive consoles (typing
# into a guest is acting on it: operator, as KubeVirt's console and VNC subresources).
NOT_READS = {"GET /token", "GET /vm/{vm}/console", "GET /vm/{vm}/vnc"}


def test_reads_are_for_viewers_and_writes_need_more() -> None:
    for route, needed in _documented().items():
        assert (needed is Role.VIEWER) == (route.startswith("GET ") and route not in NOT_READS)


def test_the_role_table_must_name_every_route_exactly() -> None:
    without_one = dict(ROLES)
    del without_one[("POST", "/vm")]
    with pytest.raises(ValueError, match=r"no role for \[\('POST', '/vm'\)\]"):
        with_roles(ROUTES, without_one)
    with pytest.raises(ValueError, match="no route for"):
        with_roles(ROUTES, {**ROLES, ("GET", "/nowhere"): Role.VIEWER})


def test_roles_are_ordered() -> None:
    assert [r.rank for r in Role] == [0, 1, 2]
    assert Role.ADMIN.allows(Role.OPERATOR) and not Role.OPERATOR.allows(Role.ADMIN)
    assert Role.VIEWER.allows(Role.VIEWER) and not Role.VIEWER.allows(Role.OPERATOR)
