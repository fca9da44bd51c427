"""The API of storage (issue #15): pools (`pools`). Routes are in `server.routes`."""
