"""Scraping a Prometheus endpoint over real HTTP and reading it with prometheus_client's parser."""

from __future__ import annotations

import dataclasses

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclasses.dataclass
class Scrape:
    samples: list[Sample]
    types: dict[str, str]  # family name -> counter, gauge, histogram, ...

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` whose labels include `labels` (0 when absent, as a counter not yet moved);
        several: their sum."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        return sum(found)

    def labelsets(self, prefix: str = "metering_") -> dict[str, set[frozenset[tuple[str, str]]]]:
        """name -> the distinct label sets of its samples (the bucket bound `le` left out)."""
        out: dict[str, set[frozenset[tuple[str, str]]]] = {}
        for s in self.samples:
            if s.name.startswith(prefix):
                out.setdefault(s.name, set()).add(frozenset((k, v) for k, v in s.labels.items() if k != "le"))
        return out


def parse(text: str) -> Scrape:
    samples: list[Sample] = []
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        samples.extend(family.samples)
    return Scrape(samples, types)


async def scrape(url: str) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(url)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers
    return parse(reply.text)
