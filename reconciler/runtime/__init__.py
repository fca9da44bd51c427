"""The machinery every controller of herd-node runs on: the work queue (`workqueue`) and
the runner from watch callbacks to workers, with metrics (`controller`)."""
