"""What the primary coordinator runs: the election's terms (`coordinator`), the cluster
controllers (`controllers`: scheduling, flush/ready, fencing and recovery, autorestart)
and the fence agents (`fencing`)."""
