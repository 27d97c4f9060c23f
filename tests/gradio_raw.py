"""A raw client of Gradio's HTTP protocol, for attacking the server as a script would (no browser, no UI rules).

It reads ``/config``, finds events by the ``elem_id`` of their trigger, joins the queue with any payload
(``/gradio_api/queue/join`` + the SSE stream of ``/gradio_api/queue/data``) and calls the direct routes
(``/gradio_api/run/predict``, ``/gradio_api/call/<name>``) that a browser never uses.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Event:
    """One event of the app: its index, trigger and input/output component ids."""

    fn_index: int
    trigger_id: int
    inputs: list[int]
    outputs: list[int]
    api_name: str | None


class RawGradio:
    """Talks to a Gradio app mounted at ``/`` of ``url`` with plain HTTP."""

    def __init__(self, url: str, timeout: float = 60, source: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        """``source``: the local address to connect from (another 127.x address is another client)."""
        self.url = url
        transport = httpx.HTTPTransport(local_address=source) if source else None
        self.http = httpx.Client(base_url=url, timeout=timeout, transport=transport, headers=headers)
        self.config: dict[str, Any] = self.http.get("/config").raise_for_status().json()
        self.session_hash = uuid.uuid4().hex[:11]
        self.by_elem = {c["props"].get("elem_id"): c["id"] for c in self.config["components"]
                        if c.get("props", {}).get("elem_id")}
        self.types = {c["id"]: c.get("type") for c in self.config["components"]}

    def close(self) -> None:
        self.http.close()

    def component(self, elem_id: str) -> int:
        return int(self.by_elem[elem_id])

    def events(self, elem_id: str, trigger: str | None = None) -> list[Event]:
        """Events triggered by the component ``elem_id`` (optionally only ``trigger``, e.g. "click")."""
        cid = self.component(elem_id)
        found = []
        for i, dep in enumerate(self.config["dependencies"]):
            targets = [tuple(t) for t in dep.get("targets", [])]
            if any(t[0] == cid and (trigger is None or t[1] == trigger) for t in targets):
                found.append(Event(dep.get("id", i), cid, list(dep["inputs"]), list(dep["outputs"]),
                                   dep.get("api_name")))
        return found

    def event(self, elem_id: str, trigger: str | None = None) -> Event:
        found = self.events(elem_id, trigger)
        assert found, f"no event on {elem_id}"
        return found[0]

    def run(self, event: Event, data: list[Any]) -> dict[str, Any]:
        """Join the queue with ``data`` and return the final message (``process_completed``)."""
        body = {"data": data, "fn_index": event.fn_index, "trigger_id": event.trigger_id,
                "session_hash": self.session_hash, "event_data": None}
        joined = self.http.post("/gradio_api/queue/join", json=body)
        if joined.status_code != 200:
            return {"msg": "join_refused", "status": joined.status_code, "body": joined.text}
        last: dict[str, Any] = {}
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return dict(msg)
                if msg.get("msg") == "close_stream":
                    break
                last = msg
        return last

    def outputs(self, event: Event, data: list[Any]) -> list[Any]:
        """The output values of a successful run (fails the test otherwise)."""
        msg = self.run(event, data)
        assert msg.get("success"), msg
        return list(msg["output"]["data"])


def file_urls(value: Any) -> list[str]:
    """Every ``url``/``path`` of a file payload anywhere inside a (nested) Gradio output value."""
    found: list[str] = []
    if isinstance(value, dict):
        if "path" in value and ("url" in value or "orig_name" in value or "meta" in value):
            found.append(str(value.get("url") or value["path"]))
        for v in value.values():
            found += file_urls(v)
    elif isinstance(value, list):
        for v in value:
            found += file_urls(v)
    return found
