"""Reading samples out of a Prometheus text exposition (needs prometheus-client)."""

from __future__ import annotations


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample ``name`` whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{len(found)} samples {name}{labels} in:\n{text}"
    return float(found[0])
