"""What one HTTP request may ask of the server, and how long it may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Per-request limits of `cliprt serve`; a request beyond one gets a JSON error.

    Attributes:
        max_body_bytes: largest request body (bytes) -> 413.
        max_items: most inputs (texts + images, or labels) in one request -> 413.
        max_text_chars: longest text (characters; CLIP reads 77 tokens anyway) -> 422.
        max_image_pixels: largest decoded image (width x height) -> 422.
        timeout_ms: a request's deadline (ms) unless it asks for a shorter one with the
            X-Timeout-Ms header -> 504 when it passes.
        max_k: most search results per query -> 422.
    """

    max_body_bytes: int = 16 << 20
    max_items: int = 64
    max_text_chars: int = 2048
    max_image_pixels: int = 4096 * 4096
    timeout_ms: float = 10_000.0
    max_k: int = 1000
