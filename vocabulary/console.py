"""The WebSocket close codes of a console session (issue #16), shared by the node endpoint
(`reconciler.endpoint.consoles`), herd-api (`server.vm_console`) and herdctl.

4000-4999 are the application's own codes (RFC 6455, 7.4.2)."""

CONSOLE_GUEST_LEFT = 4002  # the domain no longer runs on that node (stopped, or migrated)
CONSOLE_TAKEN_OVER = 4001  # another session forced the console
CONSOLE_ENDED = 4003  # herd-api: the VM stopped, or did not come up elsewhere in time
