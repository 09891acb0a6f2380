"""The one error type crawlers raise, so callers can record it per source and move on."""


class CrawlError(Exception):
    """A source could not be crawled; the message names the source and what to do."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
