"""Crawlers that turn links, repositories, folders and export archives into raw documents."""

from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.sources import CrawlFailure, CrawlReport, Source, crawl_sources

__all__ = ["CrawlError", "CrawlFailure", "CrawlReport", "Source", "crawl_sources"]
