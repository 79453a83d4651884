"""API Gateway's WebSocket frame limit, enforced by the dev server itself.

API Gateway closes a connection with 1009 when a single data frame is over 32 KB, even though a
message may be up to 128 KB when it comes in smaller frames. Browsers never split a message into
frames, so in practice any browser message over 32 KB fails once deployed. ASGI only shows whole
messages, so the check lives in the server's WebSocket protocol: ``ApiGatewayFrames`` is uvicorn's
sans-I/O WebSocket protocol (``ws="websockets-sansio"``) with the frame size checked as each frame
arrives; ``qr dev`` passes it as uvicorn's ``ws`` class. The message limit stays uvicorn's
``ws_max_size`` (128 KB), which the sans-I/O parser applies across a message's frames.
"""

from __future__ import annotations

import logging

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

from qr.runtime.sockets import CLOSE_TOO_BIG, MAX_FRAME_BYTES

logger = logging.getLogger("qr.socket")


class ApiGatewayFrames(WebSocketsSansIOProtocol):
    """A data frame over ``MAX_FRAME_BYTES`` fails the connection with 1009, as on AWS."""

    def handle_text(self, event: Frame) -> None:
        if self._fits(event):
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        if self._fits(event):
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        if self._fits(event):
            super().handle_cont(event)

    def _fits(self, frame: Frame) -> bool:
        size = len(frame.data)
        if size <= MAX_FRAME_BYTES:
            return True
        if not self.close_sent:
            reason = f"frame of {size} bytes is over API Gateway's 32 KB frame limit"
            logger.warning(
                "closed a connection with %d: %s (split messages over 32 KB into frames)",
                CLOSE_TOO_BIG,
                reason,
            )
            self.conn.fail(CLOSE_TOO_BIG, reason)
            # the app hears websocket.disconnect 1009; the close frame goes out, then the socket
            self.handle_parser_exception()
        return False
