"""Request bodies read with a cap and a deadline, so no client can hold a worker or memory.

A declared length over the cap is refused before a byte is read; a body that streams in
past the cap, or slower than the deadline, is cut off.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from qbo_pipeline.service.errors import BodyTooLarge, SlowBody

BODY_TIMEOUT = 10.0  # seconds a request body may take to arrive


async def read_body(request: Request, limit: int, timeout: float = BODY_TIMEOUT) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge(limit)
    try:
        async with asyncio.timeout(timeout):
            return await _capped(request, limit)
    except TimeoutError:
        raise SlowBody(timeout) from None


async def _capped(request: Request, limit: int) -> bytes:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BodyTooLarge(limit)
    return bytes(raw)
