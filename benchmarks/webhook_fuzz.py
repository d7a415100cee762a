"""The webhook receiver under fuzzing: honest and hostile deliveries over real HTTP.

    .venv/bin/python -m benchmarks.webhook_fuzz [--count 10000] [--seed 1130] [--threads 8]
                                                [--postgres URL] [--only KIND,...]

Intuit retries any delivery not answered 200 within 3 s, and anyone can reach the URL, so
the receiver must refuse what is not signed, keep whatever is signed exactly once (events
pending, unconnected or ignored, the rest rejected), and never answer 5xx. This sends a
seeded mix to `qbo-pipeline serve` in its own process (so its peak memory is its own) from
several threads: valid CloudEvents and legacy deliveries, replays, truncated, mistyped,
oversized, non-UTF-8 and deeply nested bodies, odd values and bad signatures. Full-size
deliveries follow one at a time, so their answer times are their own. Then it reads the
inbox table directly and checks every case against what it was built to expect.

The token store is SQLite; `--postgres URL` creates a fresh database on that server for the
run and drops it afterwards. Exits non-zero when a property fails or a figure is over its
limit, printing each failing case: its kind and the first 200 bytes of its body, never the
verifier token, a signature or a token. `--only` keeps the kinds starting with the given
prefixes, to replay one failure (`--only odd:surrogate-id --count 5`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import os
import random
import re
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from benchmarks.run import CLI, Figure, _clean_env, _free_port
from qbo_pipeline.quickbooks.catalog import ENTITIES
from qbo_pipeline.quickbooks.webhooks import MAX_REJECTS

CAP = 2 * 1024 * 1024  # the receiver's documented limit: 413 above it
ANSWER_LIMIT = 3.0  # seconds Intuit waits for a 200 before it retries the delivery
RSS_LIMIT_MIB = 512  # a small container's memory
SIGNATURE_HEADER = "intuit-signature"
WEBHOOKS_PATH = "/quickbooks/webhooks"
SYNCED = frozenset(entity.name.lower() for entity in ENTITIES)  # what the warehouse holds
OTHER_ENTITIES = ("Bill", "Payment", "Vendor", "Item", "Estimate", "JournalEntry", "Employee")
# Weighted by repetition; "restored" stands for a verb Intuit may add, stored as sent.
CE_VERBS = (("created",) * 15 + ("updated",) * 20 + ("deleted",) * 3
            + ("merged", "voided", "emailed", "restored") * 2)  # fmt: skip
LEGACY_OPERATIONS = {"Create": "created", "Update": "updated", "Delete": "deleted",
                     "Merge": "merged", "Void": "voided", "Emailed": "emailed",
                     "Restore": "restore"}  # fmt: skip
CE_REQUIRED = ("id", "type", "intuitaccountid", "intuitentityid")
CE_TOLERATED = ("time", "specversion", "source", "datacontenttype", "data")
LEGACY_REQUIRED = ("name", "id", "operation")
LEGACY_TOLERATED = ("lastUpdated", "deletedId")
# What Intuit sends: their answer times are held to the 3 s on their own too.
VALID_KINDS = ("cloudevents", "legacy", "single-event", "rebatch:cloudevents",
               "rebatch:legacy", "sentinel")  # fmt: skip
MISSING = object()  # a field left out altogether
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)
# The variants of each kind of case, drawn evenly unless weighted.
LEGACY_LEVELS = ("root", "notifications", "notification", "realmId", "dataChangeEvent",
    "entities", "entity", "field", "field", "field")  # fmt: skip
NON_UTF8 = ("random-bytes", "latin-1", "overlong", "continuation", "cut-sequence", "nul-byte",
    "surrogate-bytes", "utf-16", "bom")  # fmt: skip
BAD_SIGNATURES = ("missing", "empty", "random", "other-key", "other-body", "truncated",
    "case-flipped", "hex", "sha1", "non-ascii")  # fmt: skip
GARBAGE = ("empty", "text", "html", "scalar", "neither", "junk-array", "idless-events",
    "empty-array", "huge-number", "nan", "legacy-idless")  # fmt: skip
ODD = ("surrogate-id", "nul-id", "unicode-id", "long-id", "too-long-id", "far-time",
    "bad-time", "long-time", "legacy-far-time", "uppercase-type", "extra-fields", "realm-zero",
    "long-entity-id")  # fmt: skip
HUGE = {"over-cap": 25, "over-cap-chunked": 10, "over-cap-unsigned": 5, "at-cap": 10,
        "under-cap": 15, "under-cap-chunked": 5, "many-events": 10,
        "garbage-string": 10}  # fmt: skip
# Sent alone after the mix, at these shares of a full delivery: events without an id (one
# reject each), and valid events (a fifth is about the thousand Intuit says it batches).
PROBES = (("many-rejects", 1 / 8), ("many-rejects", 1 / 4), ("many-rejects", 1 / 2),
          ("many-rejects", 1.0), ("many-events", 0.2), ("many-events", 1.0))  # fmt: skip


# --- what a case is and what it must leave behind ------------------------------------------


@dataclass(frozen=True)
class Expected:
    """One row a delivery names: kept when it is signed and answered, absent otherwise.

    `outcome` is "event" (stored with `key` and `status`), "reject" (stored as rejected) or
    "either" (an odd value the protocol does not settle: stored once, whichever way).
    `identity` is what makes two items the same row: the CloudEvents id, the legacy tuple,
    or for rows the receiver names itself, the body and the item's place in it.
    """

    outcome: str
    identity: tuple | None = None
    event_id: str | None = None
    key: tuple | None = None  # (realm_id, entity, entity_id, operation, deleted_id)
    status: str | None = None


REJECT = Expected("reject")
EITHER = Expected("either")


@dataclass(frozen=True)
class Case:
    number: int
    kind: str
    body: bytes = field(repr=False)
    signature: bytes | None = field(repr=False)
    expect: int
    items: tuple[Expected, ...] = ()
    chunked: bool = False
    content_type: str | None = "application/json"
    alone: bool = False  # sent on its own once the concurrent mix is answered

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def shown(self) -> str:
        """The case for a failure report: never its signature."""
        how = "chunked" if self.chunked else "content-length"
        signed = "no signature" if self.signature is None else "signature header"
        return (
            f"case #{self.number} {self.kind} ({len(self.body):,} bytes, {how}, {signed})\n"
            f"    body: {self.body[:200]!r}"
        )


@dataclass(frozen=True)
class Answer:
    status: int | None
    body: Any
    error: str | None
    seconds: float
    started: float = 0.0  # perf_counter when the request began, to see what overlapped


@dataclass(frozen=True)
class World:
    """What the service knows: the verifier token and which realms are connected."""

    verifier: str = field(repr=False)
    connected: tuple[str, ...]
    synced: frozenset[str] = SYNCED


def signature_of(body: bytes, key: str, digest: Callable = hashlib.sha256) -> bytes:
    """Intuit's `intuit-signature`, base64 of an HMAC of the raw body; computed here rather
    than with the receiver's own `sign`, so a mistake there is not mirrored here."""
    return base64.b64encode(hmac.new(key.encode(), body, digest).digest())


# --- the generator -------------------------------------------------------------------------


class Builder:
    """Cases from one seeded RNG. Event ids and entity ids never repeat across cases, so a
    row in the inbox can only have come from the case that sent it (or a replay of it)."""

    def __init__(self, seed: int, world: World) -> None:
        self.rng = random.Random(seed)
        self.world = world
        self.unconnected = tuple(self.digits() for _ in range(4))
        self.serials = itertools.count(1)
        self.signed: list[Case] = []  # signed, within the cap: what replays copy
        self.batches: list[list[tuple[dict, Expected]]] = []
        self.legacy_docs: list[tuple[dict, list[Expected]]] = []

    # values

    def digits(self) -> str:
        return str(self.rng.randrange(10**15, 10**19))

    def serial(self) -> str:
        return str(next(self.serials))

    def uuid(self) -> str:
        """A version-4 UUID from the seeded RNG (uuid.UUID itself is slow for 300,000)."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def realm(self) -> str:
        if self.rng.random() < 0.6:
            return self.rng.choice(self.world.connected)
        return self.rng.choice(self.unconnected)

    def entity(self) -> str:
        roll = self.rng.random()
        if roll < 0.4:
            return "Customer"
        return "Invoice" if roll < 0.75 else self.rng.choice(OTHER_ENTITIES)

    def stamp(self, legacy: bool = False) -> str:
        moment = EPOCH + timedelta(
            seconds=self.rng.randrange(30 * 86400), milliseconds=self.rng.randrange(1000)
        )
        text = moment.isoformat(timespec="milliseconds")[:-6]
        return text + ("-08:00" if legacy and self.rng.random() < 0.5 else "Z")

    def status(self, realm: str, entity: str) -> str:
        if realm not in self.world.connected:
            return "unconnected"
        return "pending" if entity.lower() in self.world.synced else "ignored"

    def size(self) -> int:
        """Events in a delivery: mostly a few, sometimes up to 50."""
        return self.rng.randint(1, 5) if self.rng.random() < 0.5 else self.rng.randint(1, 50)

    # documents

    def event(self, event_id: str | None = None) -> tuple[dict, Expected]:
        realm, entity = self.realm(), self.entity()
        verb = self.rng.choice(CE_VERBS)
        entity_id = self.serial()
        deleted = self.serial() if verb == "merged" else None
        event_id = event_id or self.uuid()
        event = {
            "specversion": "1.0",
            "id": event_id,
            "source": "//quickbooks.api.intuit.com",
            "type": f"qbo.{entity.lower()}.{verb}.v1",
            "datacontenttype": "application/json",
            "time": self.stamp(),
            "intuitentityid": entity_id,
            "intuitaccountid": realm,
            "data": {"deletedid": deleted} if deleted else {},
        }
        if self.rng.random() < 0.1:
            del event["time"]  # optional in CloudEvents
        key = (realm, entity.lower(), entity_id, verb, deleted)
        status = self.status(realm, entity)
        return event, Expected("event", ("id", event_id), event_id, key, status)

    def events(self, count: int) -> tuple[list[dict], list[Expected]]:
        pairs = [self.event() for _ in range(count)]
        return [event for event, _ in pairs], [item for _, item in pairs]

    def legacy_entity(self, realm: str) -> tuple[dict, Expected]:
        entity, operation = self.entity(), self.rng.choice(list(LEGACY_OPERATIONS))
        entity_id = self.serial()
        element = {
            "name": entity,
            "id": entity_id,
            "operation": operation,
            "lastUpdated": self.stamp(legacy=True),
        }
        deleted = None
        if operation == "Merge":
            deleted = self.serial()
            element["deletedId"] = deleted
        key = (realm, entity.lower(), entity_id, LEGACY_OPERATIONS[operation], deleted)
        return element, Expected("event", ("legacy", *key), None, key, self.status(realm, entity))

    def legacy_doc(self, count: int) -> tuple[dict, list[list[Expected]]]:
        """A legacy delivery; its expected items grouped by notification."""
        notifications, items = [], []
        for size in self.split(count, self.rng.choice((1, 1, 1, 2, 3))):
            realm = self.realm()
            pairs = [self.legacy_entity(realm) for _ in range(size)]
            change = {"entities": [element for element, _ in pairs]}
            notifications.append({"realmId": realm, "dataChangeEvent": change})
            items.append([item for _, item in pairs])
        return {"eventNotifications": notifications}, items

    def split(self, total: int, parts: int) -> list[int]:
        parts = min(parts, total)
        cuts = sorted(self.rng.sample(range(1, total), parts - 1)) if parts > 1 else []
        return [b - a for a, b in itertools.pairwise([0, *cuts, total])]

    def dump(self, doc: Any, style: int | None = None) -> bytes:
        """Serialised in one of the ways a sender might (Intuit's own is compact)."""
        style = self.rng.randrange(4) if style is None else style
        if style == 0:
            text = json.dumps(doc, separators=(",", ":"))
        elif style == 1:
            text = json.dumps(doc)
        elif style == 2:
            text = json.dumps(doc, indent=2)
        else:
            text = json.dumps(doc, ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")

    def valid_body(self) -> tuple[bytes, list[Expected], str]:
        """A fresh valid delivery in either format, compact so any prefix is broken JSON."""
        if self.rng.random() < 0.65:
            events, items = self.events(self.size())
            return self.dump(events, style=0), items, "application/cloudevents-batch+json"
        doc, grouped = self.legacy_doc(self.size())
        return self.dump(doc, style=0), [i for g in grouped for i in g], "application/json"

    # cases

    def case(
        self,
        kind: str,
        body: bytes,
        items: Iterable[Expected] = (),
        *,
        signature: bytes | str | None = "right",
        expect: int = 200,
        chunked: bool = False,
        content_type: str | None = "application/json",
    ) -> Case:
        """A case signed right unless `signature` says otherwise (None: no header at all);
        numbered by `generate` once it keeps it."""
        if signature == "right":
            signature = signature_of(body, self.world.verifier)
        assert not isinstance(signature, str)
        return Case(number=0, kind=kind, body=body, signature=signature, expect=expect,
                    items=resolve(body, items), chunked=chunked,
                    content_type=content_type)  # fmt: skip

    def remember(self, case: Case) -> Case:
        if case.expect == 200:
            self.signed.append(case)
        return case

    def cloudevents(self) -> Case:
        events, items = self.events(self.size())
        if self.rng.random() < 0.05:  # the same event twice in one delivery
            twin = self.rng.randrange(len(events))
            events.append(events[twin])
            items.append(items[twin])
        self.batches.append(list(zip(events, items, strict=True)))
        content_type = self.rng.choice(
            ("application/cloudevents-batch+json", "application/json", None)
        )
        return self.case("cloudevents", self.dump(events), items, content_type=content_type)

    def single_event(self) -> Case:
        """One CloudEvent sent without its array."""
        event, item = self.event()
        return self.case("single-event", self.dump(event), [item])

    def legacy(self) -> Case:
        doc, grouped = self.legacy_doc(self.size())
        items = [item for group in grouped for item in group]
        self.legacy_docs.append((doc, items))
        return self.case("legacy", self.dump(doc), items)

    def replay(self) -> Case:
        """Intuit's retry: the same bytes, the same signature."""
        if not self.signed:
            return self.cloudevents()
        earlier = self.rng.choice(self.signed)
        return replace(earlier, kind=f"replay:{earlier.kind.removeprefix('replay:')}")

    def rebatch(self) -> Case:
        """Events already delivered, sent again in another delivery (other bytes)."""
        if self.batches and self.rng.random() < 0.6:
            batch = self.rng.choice(self.batches)
            chosen = self.rng.sample(batch, self.rng.randint(1, len(batch)))
            events = [event for event, _ in chosen]
            return self.case("rebatch:cloudevents", self.dump(events), [i for _, i in chosen])
        if not self.legacy_docs:
            return self.legacy()
        doc, items = self.rng.choice(self.legacy_docs)
        return self.case("rebatch:legacy", self.dump(doc, style=self.rng.randrange(1, 4)), items)

    def truncated(self) -> Case:
        body, items, content_type = self.valid_body()
        cut = body[: self.rng.randrange(len(body))]
        if self.rng.random() < 0.2:  # the signature of the whole body: refused
            return self.case(
                "truncated:full-signature",
                cut,
                items,
                signature=signature_of(body, self.world.verifier),
                expect=401,
            )
        return self.case("truncated", cut, [REJECT], content_type=content_type)

    def wrong_type(self) -> Case:
        if self.rng.random() < 0.6:
            doc, items, where = self.mistyped_cloudevents()
        else:
            doc, items, where = self.mistyped_legacy()
        return self.case(f"wrong-type:{where}", self.dump(doc), items)

    def mistyped_cloudevents(self) -> tuple[Any, list[Expected], str]:
        events, items = self.events(self.size())
        level = self.rng.choice(("root", "element", "field", "field", "field", "data"))
        at = self.rng.randrange(len(events))
        if level == "root":
            value = self.wrong_for_list(events)
            return value, rejects_of(value), "cloudevents:root"
        if level == "element":
            events[at] = self.wrong_for_object(events[at])
            items[at] = REJECT
            return events, items, "cloudevents:element"
        if level == "data":
            data = events[at]["data"]
            if isinstance(data, dict) and data and self.rng.random() < 0.5:
                set_field(data, "deletedid", self.wrong_for_string(data["deletedid"]))
            else:
                set_field(events[at], "data", self.wrong_for_object(data))
            items[at] = EITHER
            return events, items, "cloudevents:data"
        name = self.rng.choice(CE_REQUIRED + CE_TOLERATED)
        event_id = events[at]["id"]
        set_field(events[at], name, self.wrong_for_string(events[at].get(name)))
        if name == "id":
            items[at] = REJECT
        elif name in CE_REQUIRED:
            items[at] = Expected("reject", ("id", event_id), event_id)
        else:
            items[at] = EITHER
        return events, items, f"cloudevents:field:{name}"

    def mistyped_legacy(self) -> tuple[Any, list[Expected], str]:
        doc, grouped = self.legacy_doc(self.size())
        notifications = doc["eventNotifications"]
        n = self.rng.randrange(len(notifications))
        notification = notifications[n]
        entities = notification["dataChangeEvent"]["entities"]
        level = self.rng.choice(LEGACY_LEVELS)
        if level == "root":
            value = self.wrong_for_object(doc)
            return value, rejects_of(value), "legacy:root"
        if level == "notifications":
            value = self.wrong_for_list(notifications)
            doc["eventNotifications"] = value
            return doc, rejects_of(value, scalar=1), "legacy:eventNotifications"
        if level in ("notification", "realmId", "dataChangeEvent", "entities"):
            if level == "notification":
                notifications[n] = self.wrong_for_object(notification)
                grouped[n] = [REJECT]
            elif level == "realmId":
                set_field(notification, "realmId", self.wrong_for_string(notification["realmId"]))
                grouped[n] = [REJECT]
            elif level == "dataChangeEvent":
                change = notification["dataChangeEvent"]
                set_field(notification, "dataChangeEvent", self.wrong_for_object(change))
                grouped[n] = [REJECT]
            else:
                value = self.wrong_for_list(entities)
                notification["dataChangeEvent"]["entities"] = value
                grouped[n] = rejects_of(value, scalar=1)
            return doc, [i for g in grouped for i in g], f"legacy:{level}"
        at = self.rng.randrange(len(entities))
        if level == "entity":
            entities[at] = self.wrong_for_object(entities[at])
            grouped[n][at] = REJECT
            return doc, [i for g in grouped for i in g], "legacy:entity"
        name = self.rng.choice(LEGACY_REQUIRED + LEGACY_TOLERATED)
        set_field(entities[at], name, self.wrong_for_string(entities[at].get(name)))
        grouped[n][at] = REJECT if name in LEGACY_REQUIRED else EITHER
        return doc, [i for g in grouped for i in g], f"legacy:field:{name}"

    def wrong_for_string(self, original: Any) -> Any:
        """Anything but a non-empty string, or the field left out."""
        return self.rng.choice((MISSING, None, 0, -1, 3.5, 1e300, 2**70, True, False, [],
                                [original], [[[]]], {}, {"value": original}, ""))  # fmt: skip

    def wrong_for_object(self, original: Any) -> Any:
        """Anything but an object: scalars, the object as a JSON string, lists."""
        return self.rng.choice((None, 0, -7, 2.5, True, "text", json.dumps(original),
                                [original], [[["deep"]]], []))  # fmt: skip

    def wrong_for_list(self, original: list) -> Any:
        """Anything but a list of objects; a list given here holds no object."""
        return self.rng.choice((None, 0, 1.5, False, "text", json.dumps(original), {},
                                {"events": original}, [], [1, "a", None], [[original]],
                                [True] * self.rng.randint(1, 30)))  # fmt: skip

    def huge(self) -> Case:
        variant = self.rng.choices(list(HUGE), list(HUGE.values()))[0]
        if variant == "many-events":
            events, items = self.events_filling(CAP - 4096)
            return self.case("huge:many-events", self.dump(events, style=0), items)
        if variant == "garbage-string":
            body = b'"' + b"x" * (CAP - self.rng.randrange(2, 4096)) + b'"'
            return self.case("huge:garbage-string", body, [REJECT])
        body, items, content_type = self.valid_body()
        over = variant.startswith("over-cap")
        if over:
            size = CAP + (1 if self.rng.random() < 0.3 else self.rng.randint(2, CAP // 2))
        elif variant == "at-cap":
            size = CAP
        else:
            size = CAP - self.rng.randint(1, 65536)
        body = body + b" " * (size - len(body))  # trailing whitespace is still the same JSON
        signature = self.bad_signature(body)[1] if variant == "over-cap-unsigned" else "right"
        return self.case(
            f"huge:{variant}",
            body,
            items,
            signature=signature,
            expect=413 if over else 200,
            chunked=variant.endswith("chunked"),
            content_type=content_type,
        )

    def events_filling(self, size: int) -> tuple[list[dict], list[Expected]]:
        """As many events as fit in `size` bytes, compact (the array's commas counted)."""
        events, items, total = [], [], 2
        while True:
            event, item = self.event()
            total += len(json.dumps(event, separators=(",", ":"))) + 1
            if total > size:
                return events, items
            events.append(event)
            items.append(item)

    def non_utf8(self) -> Case:
        variant = self.rng.choice(NON_UTF8)
        if variant == "random-bytes":
            raw = bytearray(self.rng.randbytes(self.rng.randint(16, 4096)))
            raw[self.rng.randrange(len(raw))] = 0xFF
            return self.case("non-utf8:random-bytes", bytes(raw), [REJECT])
        if variant in ("surrogate-bytes", "utf-16", "bom"):  # one event: one row either way
            event, _ = self.event()
            if variant == "surrogate-bytes":
                event["id"] = "\udcab" + self.uuid()
            text = json.dumps([event], ensure_ascii=variant != "surrogate-bytes")
            if variant == "utf-16":
                body = text.encode("utf-16")
            elif variant == "bom":
                body = b"\xef\xbb\xbf" + text.encode()
            else:
                body = text.encode("utf-8", "surrogatepass")
            return self.case(f"non-utf8:{variant}", body, [EITHER])
        body, _, _ = self.valid_body()
        bad = {
            "latin-1": "Caf\xe9".encode("latin-1"),
            "overlong": b"\xc0\xaf",
            "continuation": b"\x80",
            "cut-sequence": b"\xe2\x82",
            "nul-byte": b"\x00",
        }[variant]
        quote = self.rng.choice([m.start() for m in re.finditer(rb'"', body)])
        return self.case(
            f"non-utf8:{variant}", body[: quote + 1] + bad + body[quote + 1 :], [REJECT]
        )

    def depth(self) -> int:
        """Shallow, around the recursion limit (1,000), beyond it, and as deep as fits."""
        return self.rng.choice((self.rng.randint(2, 100), self.rng.randint(900, 1100),
                                self.rng.randint(1100, 20000), 100_000, 900_000))  # fmt: skip

    def deep(self) -> Case:
        variant = self.rng.choice(
            ("list", "dict", "mixed", "unbalanced", "in-field", "legacy-field")
        )
        per_level = {"list": 2, "dict": 6, "mixed": 4, "unbalanced": 1}.get(variant, 2)
        d = min(self.depth(), (CAP - 64) // per_level)  # nested, not oversized
        if variant == "list":
            body = b"[" * d + b"]" * d
        elif variant == "dict":
            body = b'{"a":' * d + b"0" + b"}" * d
        elif variant == "mixed":
            body = b'[{"a":' * (d // 2) + b"0" + b"}]" * (d // 2)
        elif variant == "unbalanced":
            body = b"[" * d
        else:
            return self.deep_in_field(variant, min(d, 200_000))
        return self.case(f"deep:{variant}", body, [REJECT])

    def deep_in_field(self, variant: str, depth: int) -> Case:
        """A single event with one field nested `depth` lists deep: one row, whichever
        level (the body or the element) gives up on it."""
        nested = "[" * depth + "]" * depth
        if variant == "in-field":
            event, _ = self.event()
            name = self.rng.choice((*CE_REQUIRED, "time", "data"))
            event[name] = "@NESTED@"
            text = json.dumps([event])
            item = REJECT if name in CE_REQUIRED else EITHER
        else:
            doc, _ = self.legacy_doc(1)
            name = self.rng.choice(("id", "name", "lastUpdated"))
            doc["eventNotifications"][0]["dataChangeEvent"]["entities"][0][name] = "@NESTED@"
            text = json.dumps(doc)
            item = REJECT if name != "lastUpdated" else EITHER
        body = text.replace('"@NESTED@"', nested).encode()
        return self.case(f"deep:{variant}:{name}", body, [item])

    def bad_signature(self, body: bytes) -> tuple[str, bytes | None]:
        """A signature that is not `body`'s under our verifier token, and how it is wrong."""
        right = signature_of(body, self.world.verifier)
        variant = self.rng.choice(BAD_SIGNATURES)
        wrong: dict[str, Callable[[], bytes | None]] = {
            "missing": lambda: None,
            "empty": lambda: b"",
            "random": lambda: base64.b64encode(self.rng.randbytes(32)),
            "other-key": lambda: signature_of(body, "someone-elses-" + self.uuid()),
            "other-body": lambda: signature_of(body + b" ", self.world.verifier),
            "truncated": lambda: right[:-4],
            "case-flipped": lambda: right.swapcase(),
            "hex": lambda: (
                hmac.new(self.world.verifier.encode(), body, "sha256").hexdigest().encode()
            ),
            "sha1": lambda: signature_of(body, self.world.verifier, hashlib.sha1),
            "non-ascii": lambda: b"\xff\xfe" + base64.b64encode(self.rng.randbytes(30)),
        }
        return variant, wrong[variant]()

    def badly_signed(self) -> Case:
        if self.rng.random() < 0.85:
            body, items, content_type = self.valid_body()
        else:
            body, _, _ = self.garbage_body()
            items, content_type = [], "text/plain"
        if body and self.rng.random() < 0.1:  # a body tampered with after it was signed
            signature = signature_of(body, self.world.verifier)
            at = self.rng.randrange(len(body))
            body = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
            return self.case("bad-signature:tampered", body, items, signature=signature, expect=401)
        variant, signature = self.bad_signature(body)
        return self.case(
            f"bad-signature:{variant}",
            body,
            items,
            signature=signature,
            expect=401,
            content_type=content_type,
        )

    def garbage_body(self) -> tuple[bytes, list[Expected], str]:
        rng = self.rng
        variant = rng.choice(GARBAGE)
        if variant == "empty":
            return rng.choice((b"", b" ", b"\r\n")), [REJECT], variant
        if variant == "text":
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789{}[],:\"'!?<>"
            text = "x" + "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 400)))
            return text.encode(), [REJECT], variant
        if variant == "html":
            return b"<html><body><h1>502 Bad Gateway</h1></body></html>", [REJECT], variant
        if variant == "scalar":
            value = rng.choice(
                (b"42", b"-1", b"1.5", b"true", b"false", b"null", b'"events"', b"1e999", b"NaN")
            )
            return value, [REJECT], variant
        if variant == "neither":
            doc = rng.choice(({}, {"eventnotifications": []}, {"EventNotifications": []},
                              {"specVersion": "1.0"}, {"events": [self.event()[0]]},
                              {"data": {"eventNotifications": []}}))  # fmt: skip
            return self.dump(doc), [REJECT], variant
        if variant == "junk-array":
            pool = (0, 1.5, None, True, "x", [], [1, [2]], -(2**64))
            junk = [rng.choice(pool) for _ in range(rng.randint(1, 2000))]
            return self.dump(junk), [REJECT] * len(junk), variant
        if variant == "idless-events":
            events, _ = self.events(self.size())
            for event in events:
                event.pop("id")
            return self.dump(events), [REJECT] * len(events), variant
        if variant == "empty-array":
            return rng.choice((b"[]", b'{"eventNotifications": []}')), [], variant
        if variant == "huge-number":  # more digits than Python parses by default
            return b"[" + b"7" * rng.randint(4301, 20000) + b"]", [REJECT], variant
        if variant == "nan":
            return (
                rng.choice((b"[NaN]", b"[-Infinity]", b'{"eventNotifications": NaN}')),
                [REJECT],
                variant,
            )
        entities = [{} for _ in range(rng.randint(1, 50))]
        doc = {
            "eventNotifications": [
                {"realmId": self.realm(), "dataChangeEvent": {"entities": entities}}
            ]
        }
        return self.dump(doc), [REJECT] * len(entities), variant

    def garbage(self) -> Case:
        body, items, variant = self.garbage_body()
        return self.case(
            f"garbage:{variant}",
            body,
            items,
            content_type=self.rng.choice(("application/json", "text/plain", None)),
        )

    def odd(self) -> Case:
        """Single events with values at the edges of what the protocol allows."""
        variant = self.rng.choice(ODD)
        if variant == "legacy-far-time":
            doc, _ = self.legacy_doc(1)
            element = doc["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
            element["lastUpdated"] = self.far_time()
            return self.case("odd:legacy-far-time", self.dump(doc), [EITHER])
        event, item = self.event()
        event_id = event["id"]
        if variant == "surrogate-id":
            event["id"] = self.uuid()[:8] + self.rng.choice(("\ud800", "\udfff", "\ud83d"))
            item = EITHER
        elif variant == "nul-id":
            event["id"] = self.uuid() + "\u0000"
            item = EITHER
        elif variant in ("unicode-id", "long-id"):
            if variant == "unicode-id":
                prefix = self.rng.choice(("évènement-", "事件-", "🧾🧾-", "\u202eRTL-", "e\u0301-"))
                event_id = prefix + self.uuid()
            else:
                event_id = (self.uuid() * 8)[:256]
            event["id"] = event_id
            item = replace(item, identity=("id", event_id), event_id=event_id)
        elif variant == "too-long-id":
            event["id"] = (self.uuid() * 8)[:257]
            item = REJECT
        elif variant in ("far-time", "bad-time", "long-time"):
            event["time"] = {
                "far-time": self.far_time(),
                "bad-time": self.rng.choice(
                    ("2026-02-30T00:00:00Z", "yesterday", "", "2026-11-30T25:00:00Z")
                ),
                "long-time": "2026-11-30T12:00:00" + "0" * 60 + "Z",
            }[variant]
            item = EITHER
        elif variant == "uppercase-type":
            event["type"] = event["type"].replace("qbo.", "qbo.X", 1)
            item = EITHER
        elif variant == "extra-fields":
            event["extensions"] = {"nested": [[{"a": None}]] * 20, "n": 1e300, "id": 5}
            event["intuitentityids"] = ["1", "2"]
        elif variant == "realm-zero":
            event["intuitaccountid"] = "0"
            item = replace(item, key=("0", *item.key[1:]), status="unconnected")  # type: ignore[index]
        else:  # the longest entity id allowed, or one character more
            entity_id = self.serial().rjust(64, "0")
            realm, entity, _, verb, deleted = item.key  # type: ignore[misc]
            item = replace(item, key=(realm, entity, entity_id, verb, deleted))
            if self.rng.random() < 0.5:
                entity_id, item = entity_id + "Z", EITHER
            event["intuitentityid"] = entity_id
        return self.case(f"odd:{variant}", json.dumps([event]).encode(), [item])

    def far_time(self) -> str:
        """Timestamps that are valid ISO 8601 but leave datetime's range once made UTC."""
        return self.rng.choice(("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                "9999-12-31T23:30:00", "0001-01-01T00:00:00+14:00"))  # fmt: skip

    def probe(self, what: str, share: float) -> Case:
        """`share` of a full delivery, sent alone so its answer time is its own: valid
        events ("many-events"), or events without an id ("many-rejects", one reject each,
        whose cost grows with elements x body size if each reject hashes the whole body)."""
        size = int(share * (CAP - 4096))
        if what == "many-events":
            events, items = self.events_filling(size)
            case = self.case(f"probe:many-events:{len(events)}", self.dump(events, style=0), items)
            return replace(case, alone=True)
        event, _ = self.event()
        del event["id"]
        element = json.dumps(event, separators=(",", ":")).encode()
        count = size // (len(element) + 1)
        body = b"[" + b",".join([element] * count) + b"]"
        case = self.case(f"probe:many-rejects:{count}", body, [REJECT] * count)
        return replace(case, alone=True)

    def sentinel(self) -> Case:
        """A plain valid delivery sent after everything else: the service still works."""
        events, items = self.events(3)
        return replace(self.case("sentinel", self.dump(events), items), alone=True)


MIX: tuple[tuple[str, int, Callable[[Builder], Case]], ...] = (
    ("cloudevents", 240, Builder.cloudevents),
    ("legacy", 120, Builder.legacy),
    ("single-event", 20, Builder.single_event),
    ("replay", 90, Builder.replay),
    ("rebatch", 20, Builder.rebatch),
    ("truncated", 60, Builder.truncated),
    ("wrong-type", 150, Builder.wrong_type),
    ("huge", 10, Builder.huge),
    ("non-utf8", 40, Builder.non_utf8),
    ("deep", 30, Builder.deep),
    ("bad-signature", 120, Builder.badly_signed),
    ("garbage", 60, Builder.garbage),
    ("odd", 40, Builder.odd),
)


def set_field(target: dict, name: str, value: Any) -> None:
    if value is MISSING:
        target.pop(name, None)
    else:
        target[name] = value


def rejects_of(value: Any, scalar: int = 1) -> list[Expected]:
    """The rows a replacement for a list of objects leaves: one reject per element of a
    list (none of which is an object with an id), or `scalar` for anything else."""
    return [REJECT] * (len(value) if isinstance(value, list) else scalar)


def wanted(kind: str, only: Sequence[str], skip: Sequence[str]) -> bool:
    return (not only or kind.startswith(tuple(only))) and not kind.startswith(tuple(skip))


def resolve(body: bytes, items: Iterable[Expected]) -> tuple[Expected, ...]:
    """Items the receiver names itself are told apart by the body and their place in it.

    Past MAX_REJECTS rejects in one delivery, the receiver keeps the first ones and sums
    up the rest in one more row."""
    digest = hashlib.sha256(body).hexdigest()
    named = [
        item if item.identity else replace(item, identity=("body", digest, n))
        for n, item in enumerate(items)
    ]
    rejects = [n for n, item in enumerate(named) if item.outcome == "reject"]
    if len(rejects) <= MAX_REJECTS:
        return tuple(named)
    dropped = set(rejects[MAX_REJECTS:])
    summary = Expected("reject", identity=("body", digest, "more"))
    return (*(item for n, item in enumerate(named) if n not in dropped), summary)


def generate(
    count: int,
    seed: int,
    world: World,
    *,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    probes: Sequence[tuple[str, float]] = PROBES,
) -> list[Case]:
    """`count` cases of the mix, the probes, then the sentinel. `only`/`skip` filter kinds
    by prefix and the rest of the mix is drawn the same way, so a failure found in a full
    run comes back with `--only`."""
    builder = Builder(seed, world)
    names, weights = [m[0] for m in MIX], [m[1] for m in MIX]
    makers = {m[0]: m[2] for m in MIX}
    in_mix = not only or any(p.startswith(n) or n.startswith(p) for p in only for n in names)
    cases: list[Case] = []
    for attempt in itertools.count():
        if len(cases) == count or not in_mix:
            break
        if attempt > 2000 * count + 10_000:
            raise ValueError(f"too few cases of the kinds {', '.join(only)}")
        case = makers[builder.rng.choices(names, weights)[0]](builder)
        if wanted(case.kind, only, skip):
            cases.append(builder.remember(case))
    probing = (builder.probe(what, share) for what, share in probes)
    cases += [probe for probe in probing if wanted(probe.kind, only, skip)]
    cases.append(builder.sentinel())
    return [replace(case, number=n) for n, case in enumerate(cases, 1)]


# --- sending -------------------------------------------------------------------------------


def send(url: str, cases: Sequence[Case], threads: int = 8, timeout: float = 120) -> list[Answer]:
    """Every case over HTTP from `threads` senders with kept-alive connections; cases marked
    `alone` go one at a time, in order, once all the others are answered."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def post(case: Case) -> Answer:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=timeout)
            with lock:
                clients.append(client)
        return deliver(client, url, case)

    answers: dict[int, Answer] = {}
    first = [case for case in cases if not case.alone]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for case, answer in zip(first, pool.map(post, first), strict=True):
            answers[case.number] = answer
    with httpx.Client(timeout=timeout) as client:
        for case in cases:
            if case.alone:
                answers[case.number] = deliver(client, url, case)
    for client in clients:
        client.close()
    return [answers[case.number] for case in cases]


def deliver(client: httpx.Client, url: str, case: Case) -> Answer:
    headers: dict[str, str | bytes] = {}
    if case.content_type:
        headers["content-type"] = case.content_type
    if case.signature is not None:
        headers[SIGNATURE_HEADER] = case.signature
    content: bytes | Iterator[bytes] = chunks(case.body) if case.chunked else case.body
    started = time.perf_counter()
    try:
        response = client.post(url, content=content, headers=headers)
    except httpx.HTTPError as error:
        error_text = f"{type(error).__name__}: {error}"
        return Answer(None, None, error_text, time.perf_counter() - started, started)
    seconds = time.perf_counter() - started
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    return Answer(response.status_code, body, None, seconds, started)


def chunks(body: bytes, size: int = 65536) -> Iterator[bytes]:
    """The body without a declared length (chunked), so only the streaming cap can stop it."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


# --- reading the inbox ---------------------------------------------------------------------

INBOX_QUERY = (
    "SELECT event_id, realm_id, entity, entity_id, operation, deleted_id, status "
    "FROM qbo_webhook_events"
)


def read_inbox(database: str | Path) -> list[dict]:
    """Every stored row, read straight from the table (a PostgreSQL URL or a SQLite file),
    not through the inbox's own code."""
    if isinstance(database, str):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(database, row_factory=dict_row) as connection:
            try:
                return list(connection.execute(INBOX_QUERY).fetchall())
            except psycopg.errors.UndefinedTable:
                return []
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute(INBOX_QUERY)]
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []
        raise
    finally:
        connection.close()


# --- checking ------------------------------------------------------------------------------


@dataclass
class Failure:
    case: Case | None
    answer: Answer | None
    problems: list[str]

    def shown(self) -> str:
        lines = [self.case.shown() if self.case else "the run as a whole"]
        if self.case and self.answer:
            lines.append(
                f"    expected: {self.case.expect}"
                + (
                    f", {describe_items(self.case.items)}"
                    if self.case.expect == 200
                    else ", nothing stored"
                )
            )
            got = self.answer.error or f"{self.answer.status} {json.dumps(self.answer.body)[:200]}"
            lines.append(f"    got: {got}")
        lines += [f"    - {problem}" for problem in self.problems[:8]]
        if len(self.problems) > 8:
            lines.append(f"    - ... and {len(self.problems) - 8} more")
        return "\n".join(lines)


def describe_items(items: Sequence[Expected]) -> str:
    counts = Counter(item.outcome for item in items)
    return f"{len(items)} rows named ({', '.join(f'{n} {k}' for k, n in counts.items()) or 'none'})"


def row_key(row: dict) -> tuple:
    return (row["realm_id"], row["entity"], row["entity_id"], row["operation"], row["deleted_id"])


@dataclass
class Inbox:
    """The stored rows, indexed the ways the checks look them up."""

    rows: list[dict]
    by_id: dict[str, dict] = field(init=False)
    by_key: dict[tuple, list[dict]] = field(init=False)
    reject_digests: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {row["event_id"]: row for row in self.rows}
        self.by_key = defaultdict(list)
        for row in self.rows:
            if row["entity_id"] is not None:
                self.by_key[row_key(row)].append(row)
        self.reject_digests = {
            row["event_id"].split(":")[1]
            for row in self.rows
            if row["event_id"].startswith("rejected:")
        }


def check(cases: Sequence[Case], answers: Sequence[Answer], rows: list[dict]) -> list[Failure]:
    """Every property, case by case, then the counts that only add up over the whole run."""
    inbox = Inbox(rows)
    signed = {case.digest for case in cases if case.expect == 200}
    failures = []
    for case, answer in zip(cases, answers, strict=True):
        problems = answer_problems(case, answer)
        if case.expect == 200:
            problems += stored_problems(case, inbox)
        else:
            problems += refused_problems(case, inbox, case.digest in signed)
        if problems:
            failures.append(Failure(case, answer, problems))
    failures += replay_problems(cases, answers)
    totals = run_problems(cases, answers, inbox)
    if totals:
        failures.append(Failure(None, None, totals))
    return failures


def answer_problems(case: Case, answer: Answer) -> list[str]:
    if answer.error:
        return [f"no answer: {answer.error}"]
    if answer.status != case.expect:
        return [f"answered {answer.status}, expected {case.expect}"]
    if answer.status != 200:
        return []
    body = answer.body
    if not (
        isinstance(body, dict)
        and set(body) == {"stored", "duplicates", "rejected"}
        and all(isinstance(v, int) and v >= 0 for v in body.values())
    ):
        return [f"the 200's body is not {{stored, duplicates, rejected}}: {body!r}"[:300]]
    if body["stored"] + body["duplicates"] != len(case.items):
        return [
            f"counted {body['stored']} stored + {body['duplicates']} duplicates; "
            f"the body names {len(case.items)}"
        ]
    return []


def stored_problems(case: Case, inbox: Inbox) -> list[str]:
    """Each well-formed event stored once, as sent, with the status its realm and entity
    call for; each reject with an id kept as rejected."""
    problems = []
    for item in case.items:
        if item.outcome == "event":
            problems += event_problems(item, inbox)
        elif item.outcome == "reject" and item.event_id is not None:
            row = inbox.by_id.get(item.event_id)
            if row is None or row["status"] != "rejected":
                problems.append(
                    f"element {item.event_id!r} should be kept as rejected; "
                    f"found {row and row['status']!r}"
                )
    return problems


def event_problems(item: Expected, inbox: Inbox) -> list[str]:
    assert item.key is not None
    rows = inbox.by_key.get(item.key, [])
    what = f"{item.key[1]} {item.key[2]} {item.key[3]} in realm {item.key[0]}"
    if item.event_id is not None:
        row = inbox.by_id.get(item.event_id)
        if row is None:
            return [f"event {item.event_id!r} ({what}) was not stored"]
        if row_key(row) != item.key:
            return [f"event {item.event_id!r} stored as {row_key(row)}, sent {item.key}"]
    if len(rows) != 1:
        return [f"{what} stored {len(rows)} times, not once"]
    if rows[0]["status"] != item.status:
        return [f"{what} has status {rows[0]['status']!r}, expected {item.status!r}"]
    return []


def refused_problems(case: Case, inbox: Inbox, also_signed: bool = False) -> list[str]:
    """Nothing of a refused delivery stored: none of its ids, tuples, or a reject named
    after its body (unless the same bytes were also sent signed, as `b""` may be)."""
    problems = []
    for item in case.items:
        if item.event_id is not None and item.event_id in inbox.by_id:
            problems.append(f"event {item.event_id!r} of a refused delivery was stored")
        elif item.key is not None and item.key in inbox.by_key:
            problems.append(f"{item.key} of a refused delivery was stored")
    if not also_signed and case.digest[:32] in inbox.reject_digests:
        problems.append("a reject named after this refused body was stored")
    return problems


def deliveries_by_body(cases: Sequence[Case],
                       answers: Sequence[Answer]) -> list[list[tuple[Case, Answer]]]:  # fmt: skip
    """Signed deliveries answered 200, grouped by their bytes, each group in sending order."""
    groups: dict[str, list[tuple[Case, Answer]]] = defaultdict(list)
    for case, answer in zip(cases, answers, strict=True):
        if case.expect == 200 and answer.status == 200 and isinstance(answer.body, dict):
            groups[case.digest].append((case, answer))
    return [sorted(group, key=lambda pair: pair[1].started) for group in groups.values()]


def late_replays(cases: Sequence[Case], answers: Sequence[Answer]) -> list[tuple[Case, Answer]]:
    """Deliveries sent after the same bytes were already answered 200: all duplicates, since
    the earlier one was stored before its answer."""
    late = []
    for group in deliveries_by_body(cases, answers):
        first_answered = min(a.started + a.seconds for _, a in group)
        late += [(c, a) for c, a in group if a.started > first_answered]
    return late


def replay_problems(cases: Sequence[Case], answers: Sequence[Answer]) -> list[Failure]:
    """The same bytes delivered k times: at most its rows stored, the rest duplicates; and
    nothing stored by a copy sent after an earlier one was answered."""
    failures = []
    for case, answer in late_replays(cases, answers):
        if answer.body["stored"] != 0 or answer.body["duplicates"] != len(case.items):
            failures.append(Failure(case, answer, ["sent after the same bytes were answered "
                                                   "200, yet not all duplicates"]))  # fmt: skip
    for group in deliveries_by_body(cases, answers):
        if len(group) < 2:
            continue
        items = group[0][0].items
        distinct = len({item.identity for item in items})
        stored = sum(answer.body.get("stored", 0) for _, answer in group)
        duplicates = sum(answer.body.get("duplicates", 0) for _, answer in group)
        want = len(group) * len(items) - distinct
        if stored > distinct or duplicates < want:
            problem = (
                f"{len(group)} deliveries of these bytes stored {stored} (at most "
                f"{distinct}) and counted {duplicates} duplicates (at least {want})"
            )
            failures.append(Failure(group[-1][0], group[-1][1], [problem]))
    return failures


def run_problems(cases: Sequence[Case], answers: Sequence[Answer], inbox: Inbox) -> list[str]:
    """Counts over the run: rows = distinct items of answered deliveries = stored answered;
    rejected rows = rejected answered, between the strict rejects and those plus the odd."""
    identities: dict[tuple, str] = {}
    stored = rejected = 0
    for case, answer in zip(cases, answers, strict=True):
        if case.expect == 200 and answer.status == 200 and isinstance(answer.body, dict):
            identities.update((item.identity, item.outcome) for item in case.items)
            stored += answer.body.get("stored", 0)
            rejected += answer.body.get("rejected", 0)
    rows = len(inbox.rows)
    rejected_rows = sum(row["status"] == "rejected" for row in inbox.rows)
    outcomes = Counter(identities.values())
    problems = []
    if rows != len(identities):
        problems.append(
            f"the inbox holds {rows:,} rows; the answered deliveries name "
            f"{len(identities):,} distinct ones"
        )
    if stored != rows:
        problems.append(f"answers say {stored:,} stored; the inbox holds {rows:,} rows")
    if rejected != rejected_rows:
        problems.append(f"answers say {rejected:,} rejected; the inbox holds {rejected_rows:,}")
    low, high = outcomes["reject"], outcomes["reject"] + outcomes["either"]
    if not low <= rejected_rows <= high:
        problems.append(f"{rejected_rows:,} rows are rejected; expected {low:,} to {high:,}")
    return problems


# --- figures -------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the value `share` of the answers were at or under."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def event_tally(cases: Sequence[Case], rows: list[dict]) -> tuple[int, int]:
    """Well-formed events of signed deliveries, and how many of them the inbox holds once,
    as sent, with the right status (whatever became of the delivery)."""
    inbox = Inbox(rows)
    events = {item.identity: item for case in cases if case.expect == 200
              for item in case.items if item.outcome == "event"}  # fmt: skip
    return len(events), sum(not event_problems(item, inbox) for item in events.values())


def property_figures(cases: Sequence[Case], answers: Sequence[Answer], rows: list[dict],
                     failures: Sequence[Failure], alive: bool) -> list[Figure]:  # fmt: skip
    pairs = list(zip(cases, answers, strict=True))
    sent, once = event_tally(cases, rows)
    unsigned = [a for c, a in pairs if c.expect == 401]
    late = late_replays(cases, answers)
    stored_again = sum(a.body["stored"] != 0 for _, a in late)
    return [
        Figure("cases failing a property", sum(f.case is not None for f in failures), "cases",
               0, "max"),
        Figure(f"well-formed events (of {sent:,} signed) not stored exactly once",
               sent - once, "events", 0, "max"),
        Figure(f"badly signed deliveries (of {len(unsigned):,}) not answered 401",
               sum(a.status != 401 for a in unsigned), "", 0, "max"),
        Figure(f"copies sent after the first was answered (of {len(late):,}) storing rows",
               stored_again, "", 0, "max"),
        Figure("run-wide counts that do not add up", sum(f.case is None for f in failures),
               "checks", 0, "max"),
        Figure("answers 5xx", sum((a.status or 0) >= 500 for a in answers), "answers", 0, "max"),
        Figure("connection errors (no answer)", sum(a.error is not None for a in answers),
               "requests", 0, "max"),
        Figure("service alive and answering after the run", int(alive), "", 1, "min"),
    ]  # fmt: skip


def time_figures(cases: Sequence[Case], answers: Sequence[Answer]) -> list[Figure]:
    """Answer times against Intuit's 3 s: the concurrent mix as a whole, what Intuit itself
    sends within it, and each case sent alone."""
    mix = [(c, a) for c, a in zip(cases, answers, strict=True)
           if not c.alone and a.status is not None]  # fmt: skip
    times = [a.seconds for _, a in mix]
    valid = [a.seconds for c, a in mix if c.kind.removeprefix("replay:") in VALID_KINDS]
    result = [
        Figure(f"answer time {name}, the concurrent mix (Intuit waits 3 s)",
               percentile(times, share), "s", ANSWER_LIMIT, "max")
        for name, share in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    ]  # fmt: skip
    if valid:
        result += [
            Figure(f"answer time {name}, valid deliveries in the mix (what Intuit sends)",
                   percentile(valid, share), "s", ANSWER_LIMIT, "max")
            for name, share in (("p99", 0.99), ("max", 1.0))
        ]  # fmt: skip
    for case, answer in zip(cases, answers, strict=True):
        if case.alone and case.kind.startswith("probe:"):
            what = "valid events" if "many-events" in case.kind else "events without an id"
            name = (f"answer time alone, {len(case.items):,} {what} "
                    f"({len(case.body) / 2**20:.2f} MiB)")  # fmt: skip
            result.append(Figure(name, answer.seconds, "s", ANSWER_LIMIT, "max"))
    return result


def summary(cases: Sequence[Case], answers: Sequence[Answer], rows: list[dict],
            seconds: float) -> list[str]:  # fmt: skip
    """What was sent and what the inbox holds, as plain lines (no limits on these)."""
    mix = [(c, a) for c, a in zip(cases, answers, strict=True) if not c.alone]
    statuses = Counter(str(a.status) if a.status else "no answer" for a in answers)
    kinds = Counter(case.kind.split(":")[0] for case in cases)
    events = {item.identity for case, _ in mix if case.expect == 200 for item in case.items
              if item.outcome == "event"}  # fmt: skip
    replays = [a for c, a in mix if c.kind.startswith("replay")]
    duplicates = sum(a.body.get("duplicates", 0) for a in replays if isinstance(a.body, dict))
    stored = Counter(row["status"] for row in rows)
    megabytes = sum(len(c.body) for c, _ in mix) / 2**20
    return [
        f"the mix: {len(mix):,} deliveries ({megabytes:,.0f} MiB) in {seconds:.1f} s, "
        f"{len(mix) / seconds:,.0f} a second; {len(events):,} distinct well-formed events in "
        f"signed deliveries, {len(events) / seconds:,.0f} a second",
        "status codes: " + ", ".join(f"{k} x{n:,}" for k, n in sorted(statuses.items())),
        "kinds: " + ", ".join(f"{k} {n:,}" for k, n in sorted(kinds.items())),
        f"replays: {len(replays):,} deliveries answered {duplicates:,} duplicates",
        "inbox rows: " + ", ".join(f"{k} {n:,}" for k, n in sorted(stored.items())),
    ]


def slowest(cases: Sequence[Case], answers: Sequence[Answer], n: int = 8) -> list[str]:
    mix = [(c, a) for c, a in zip(cases, answers, strict=True) if not c.alone]
    mix.sort(key=lambda pair: pair[1].seconds, reverse=True)
    return [f"  {a.seconds:6.2f} s  {a.status}  case #{c.number} {c.kind} ({len(c.body):,} "
            f"bytes, {len(c.items):,} rows named)" for c, a in mix[:n]]  # fmt: skip


# --- the deployment ------------------------------------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen
    base_url: str
    log: Path
    database: str | Path  # what read_inbox reads

    @property
    def webhooks_url(self) -> str:
        return f"{self.base_url}{WEBHOOKS_PATH}"

    def answers(self) -> bool:
        if self.process.poll() is not None:
            return False
        try:
            httpx.get(f"{self.base_url}{WEBHOOKS_PATH}", timeout=5)
        except httpx.HTTPError:
            return False
        return True

    def peak_rss_mib(self) -> float | None:
        """VmHWM of the live process: the most resident memory it has held."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(found.group(1)) / 1024 if found else None

    def exceptions(self, limit: int = 10) -> list[str]:
        """The exception lines the service logged (its own messages carry no tokens)."""
        lines = self.log.read_text(errors="replace").splitlines()
        found = [line for line in lines if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        return list(dict.fromkeys(line[:200] for line in found))[:limit]


@contextmanager
def postgres_database(server_url: str | None) -> Iterator[str | None]:
    """A new, empty database on the given server for this run, dropped afterwards."""
    if server_url is None:
        yield None
        return
    import psycopg

    name = f"qbo_webhook_fuzz_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(server_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the service exited before it answered; see its log")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the service did not answer at {url}")


@contextmanager
def deployment(
    folder: Path, database_url: str | None, verifier: str
) -> Iterator[tuple[Service, tuple[str, ...]]]:
    """An emulator in this process, `qbo-pipeline serve` in its own, and two companies
    connected through the service as a user would (the vault benchmark's connect)."""
    from benchmarks.vault_bench import _admin, _connect
    from qbo_pipeline.emulator.config import EmulatorConfig
    from qbo_pipeline.emulator.server import EmulatorServer
    from qbo_pipeline.vault.crypto import generate_key

    secret = secrets.token_urlsafe(16)
    config = EmulatorConfig(client_id="bench-app", client_secret=secret, customers=2, invoices=2)
    with EmulatorServer(config) as emulator:
        port, admin_token = _free_port(), secrets.token_urlsafe(24)
        base = f"http://127.0.0.1:{port}"
        env = {
            **_clean_env(),
            "QUICKBOOKS_CLIENT_ID": "bench-app",
            "QUICKBOOKS_CLIENT_SECRET": secret,
            "QUICKBOOKS_DISCOVERY_URL": emulator.discovery_url,
            "QUICKBOOKS_API_BASE_URL": emulator.api_base_url,
            "QUICKBOOKS_REDIRECT_URI": f"{base}/quickbooks/auth/callback",
            "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN": verifier,
            "QBO_TOKEN_KEY": generate_key(),
            "QBO_STATE_DIR": str(folder / "state"),
            "QBO_ADMIN_TOKEN": admin_token,
        }
        if database_url:
            env["QBO_DATABASE_URL"] = database_url
        log = folder / "service.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [CLI, "serve", "--port", str(port)], env=env, stdout=sink, stderr=sink
            )
        try:
            wait_until_up(f"{base}{WEBHOOKS_PATH}", process)
            admin = {"Authorization": f"Bearer {admin_token}"}
            realm_a, realm_b = emulator.config.realm_id, "4620816365000000001"
            _admin(emulator.base_url, "POST", "companies", {"realm_id": realm_b, "customers": 2})
            for realm in (realm_a, realm_b):
                _connect(base, admin, emulator.base_url, realm)
            database = database_url or folder / "state" / "connections.sqlite"
            yield Service(process, base, log, database), (realm_a, realm_b)
        finally:
            process.terminate()
            process.wait(timeout=30)


# --- the command ---------------------------------------------------------------------------


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="deliveries to send")
    parser.add_argument("--seed", type=int, default=1130, help="the generator's seed")
    parser.add_argument("--threads", type=int, default=8, help="concurrent senders")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL server for the token store (a database is created "
        "for the run and dropped after)",
    )
    parser.add_argument("--only", default="", help="comma-separated kind prefixes to keep")
    parser.add_argument("--skip", default="", help="comma-separated kind prefixes to leave out")
    return parser.parse_args(argv)


def prefixes(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    verifier = secrets.token_urlsafe(32)
    store = "PostgreSQL" if args.postgres else "SQLite"
    with (
        tempfile.TemporaryDirectory(prefix="qbo-webhook-fuzz-") as folder,
        postgres_database(args.postgres) as database_url,
        deployment(Path(folder), database_url, verifier) as (service, connected),
    ):
        world = World(verifier, connected)
        cases = generate(args.count, args.seed, world, only=prefixes(args.only),
                         skip=prefixes(args.skip))  # fmt: skip
        mix, alone = [c for c in cases if not c.alone], [c for c in cases if c.alone]
        started = time.perf_counter()
        answers = send(service.webhooks_url, mix, args.threads)
        seconds = time.perf_counter() - started
        answers += send(service.webhooks_url, alone, threads=1)
        alive = service.answers()
        peak = service.peak_rss_mib()
        rows = read_inbox(service.database)
        exceptions = service.exceptions()
    cases = mix + alone
    failures = check(cases, answers, rows)
    results = property_figures(cases, answers, rows, failures, alive)
    results += time_figures(cases, answers)
    if peak is not None:
        results.append(Figure("service peak RSS (VmHWM)", peak, "MiB", RSS_LIMIT_MIB, "max"))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, token store on {store}, "
        f"`qbo-pipeline serve` in its own process, {args.threads} senders, seed {args.seed}"
    )
    for line in [*summary(cases, answers, rows, seconds), "slowest in the mix:",
                 *slowest(cases, answers)]:  # fmt: skip
        print(line)
    for figure in results:
        print(figure.line())
    if exceptions:
        print("exceptions in the service log:")
        for line in exceptions:
            print(f"  {line}")
    for failure in failures[:25]:
        print("FAIL " + failure.shown())
    if len(failures) > 25:
        print(f"... and {len(failures) - 25} more")
    if failures:
        kinds = Counter(f.case.kind.removeprefix("replay:") for f in failures if f.case)
        print("failing cases by kind: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    return 0 if not failures and all(f.ok for f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
