"""Thin HTTP transports that execute the Canvas core's calls: requests (sync) and aiohttp (async)."""
