"""The REST API server `herd-api` (aiohttp) over the store."""
