"""`herdctl`: the command-line client. Speaks HTTP to `herd-api` only."""
