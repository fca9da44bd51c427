"""Everything that speaks to ZooKeeper: paths, the JSON codec, version-checked reads and
writes, transactions (rename, atomic apply), the watched cache (informer) and the layout
version. Called by the node daemon (`reconciler`) and the API server (`server`).
"""
