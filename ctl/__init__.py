"""`herdctl`: the command-line client of Herd. It speaks HTTP to `herd-api` only (and may
use `schemas` to check files before sending them); it never imports the store, the daemon,
the server, kazoo or libvirt. `ctl.main` is the entry point; `ctl.dev` runs a local
cluster as processes; `ctl.demo` is `make demo`.
"""
