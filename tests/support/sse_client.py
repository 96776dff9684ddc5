"""A Server-Sent Events parser that follows the HTML spec's event-stream rules, for tests."""

from dataclasses import dataclass

import httpx


@dataclass
class Event:
    event: str
    data: str
    received_at: float


def parse_events(lines, clock) -> tuple[list[Event], int]:
    """Events and the number of comment lines, from an iterator of decoded lines."""
    events, comments = [], 0
    event_type, data = "", []
    for line in lines:
        if line == "":
            if data:
                events.append(Event(event_type or "message", "\n".join(data), clock()))
            event_type, data = "", []
            continue
        if line.startswith(":"):
            comments += 1
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event_type = value
        elif field == "data":
            data.append(value)
    return events, comments


def stream_events(client: httpx.Client, url: str, json: dict, clock) -> tuple[httpx.Response, list[Event], int]:
    with client.stream("POST", url, json=json) as response:
        if response.status_code != 200:
            response.read()
            return response, [], 0
        events, comments = parse_events(response.iter_lines(), clock)
    return response, events, comments
