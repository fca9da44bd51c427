"""The REST API server `herd-api` (aiohttp) over the store (DESIGN.md section 5).

`app.make_app(config)` builds the application; `main` is the console script. Requests
pass the middlewares (`metrics`, `errors`, `auth`), are validated with the `schemas`
request schemas (`http`), and reach the handlers: `vm_handlers` (the VM object),
`vm_verbs` (state and placement verbs), `node_handlers`, `apply`, `watch`, `status` and
`metrics`. Reads come from the watched cache (`cache`, with the watch events of `events`);
writes go to ZooKeeper version-checked and return once the cache shows them (`access`).
`openapi` documents the route table (`routes`) with `responses`.
"""
