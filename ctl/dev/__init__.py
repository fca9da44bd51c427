"""The local cluster of `herdctl dev up`: ZooKeeper (`zookeeper`), simulated hypervisors
(`nodes`), the processes and their records (`processes`, `state`), and the orchestration
(`cluster`). Everything runs as separate processes; nothing here imports the daemon, the
server or kazoo (DESIGN.md section 1). Used by `ctl.cmd_dev`, `ctl.demo` and the tests.
"""
