"""Drives drover's Cloudflare fake with Cloudflare's official Python SDK and with octoDNS.

Covers every call drover's Cloudflare client makes (zones by name, create, get, patch, delete;
records listed by pages and filtered on name.exact, content.exact and type; created, updated,
patched, deleted one by one and in batches; the zone exported) plus CAA and SRV records and
host names with the trailing dot. The fake is at $CF_FAKE_URL (its /client/v4 base), accepting
$CF_FAKE_TOKEN, with new zones in account $CF_FAKE_ACCOUNT.

Prints one line per check and closes with "N passed, N failed"; exits 1 if any failed.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import datetime

import cloudflare
import dns.zone
import httpx

# octoDNS logs its own housekeeping as warnings; only errors matter here.
logging.basicConfig(level=logging.ERROR)

URL = os.environ["CF_FAKE_URL"]
TOKEN = os.environ["CF_FAKE_TOKEN"]
ACCOUNT = os.environ["CF_FAKE_ACCOUNT"]
ZONE = "sdk-check.ro"

CHECKS = []
STATE: dict = {}
REQUESTS: list[str] = []


def check(fn):
    CHECKS.append(fn)
    return fn


def count_request(request: httpx.Request) -> None:
    REQUESTS.append(f"{request.method} {request.url}")


def client(token: str = TOKEN) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(
        api_token=token,
        base_url=URL,
        max_retries=0,
        http_client=cloudflare.DefaultHttpxClient(event_hooks={"request": [count_request]}),
    )


CF = client()


def records(**filters) -> list:
    return list(CF.dns.records.list(zone_id=STATE["zone"], **filters))


def summary(found) -> list[str]:
    return sorted(f"{r.name} {r.type} {r.content}" for r in found)


def expect(actual, expected, what: str = "") -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect_error(kind, code, call) -> None:
    try:
        call()
    except kind as error:
        codes = [e["code"] for e in (error.body or {}).get("errors", [])] if isinstance(error.body, dict) else []
        if code is not None and code not in codes:
            raise AssertionError(f"expected error code {code}, got {codes}") from error
        return
    raise AssertionError(f"expected {kind.__name__}")


# Zones -------------------------------------------------------------------------------------


@check
def zone_is_created_in_the_account():
    zone = CF.zones.create(account={"id": ACCOUNT}, name=ZONE, type="full")
    STATE["zone"] = zone.id
    expect(zone.name, ZONE, "name")
    expect(zone.account.id, ACCOUNT, "account")
    expect(zone.status, "pending", "status")
    expect(zone.type, "full", "type")
    expect(zone.paused, False, "paused")
    expect(len(zone.name_servers), 2, "name servers")
    assert all(ns.endswith(".ns.cloudflare.com") for ns in zone.name_servers), zone.name_servers
    assert isinstance(zone.created_on, datetime), zone.created_on
    expect(zone.plan.legacy_id, "free", "plan")


@check
def zone_is_listed_by_name_and_account():
    expect([z.id for z in CF.zones.list(name=ZONE)], [STATE["zone"]], "by name")
    assert STATE["zone"] in [z.id for z in CF.zones.list(account={"id": ACCOUNT})]
    expect(list(CF.zones.list(name="absent-" + ZONE)), [], "absent name")


@check
def zone_creation_twice_is_refused():
    expect_error(
        cloudflare.BadRequestError,
        1061,
        lambda: CF.zones.create(account={"id": ACCOUNT}, name=ZONE, type="full"),
    )


@check
def zone_is_got_with_its_fields():
    zone = CF.zones.get(zone_id=STATE["zone"])
    expect((zone.id, zone.name, zone.status, zone.type), (STATE["zone"], ZONE, "pending", "full"))
    assert zone.name_servers and zone.plan and zone.created_on and zone.modified_on


@check
def zone_is_patched_one_property_at_a_time():
    paused = CF.zones.edit(zone_id=STATE["zone"], paused=True)
    expect(paused.paused, True, "paused")
    expect(CF.zones.get(zone_id=STATE["zone"]).paused, True, "paused after get")
    expect(CF.zones.edit(zone_id=STATE["zone"], paused=False).paused, False, "unpaused")
    partial = CF.zones.edit(zone_id=STATE["zone"], type="partial")
    expect(partial.type, "partial", "type")
    CF.zones.edit(zone_id=STATE["zone"], type="full")


@check
def unknown_zone_and_bad_token_are_typed_errors():
    expect_error(cloudflare.NotFoundError, None, lambda: CF.zones.get(zone_id="f" * 32))
    expect_error(cloudflare.AuthenticationError, 10000, lambda: list(client("wrong").zones.list()))


# Records -----------------------------------------------------------------------------------

CREATES = [
    dict(name=ZONE, type="A", content="192.0.2.10", ttl=300, proxied=False),
    dict(name=f"www.{ZONE}", type="A", content="192.0.2.10", ttl=300, proxied=False),
    dict(name=f"mail.{ZONE}", type="A", content="192.0.2.11", ttl=300, proxied=False),
    dict(name=ZONE, type="AAAA", content="2001:db8::10", ttl=300, proxied=False),
    dict(name=ZONE, type="TXT", content='"v=spf1 a mx ip4:192.0.2.10 ~all"', ttl=3600),
    dict(name=f"sub.{ZONE}", type="NS", content="ns1.example.net.", ttl=3600),
    # octoDNS sends host names with the trailing dot.
    dict(name=ZONE, type="MX", content=f"mail.{ZONE}.", priority=10, ttl=3600),
    dict(name=f"shop.{ZONE}", type="CNAME", content="shops.example.net.", ttl=300, proxied=False),
    dict(name=ZONE, type="CAA", ttl=3600, data={"flags": 0, "tag": "issue", "value": "letsencrypt.org"}),
    dict(name=ZONE, type="CAA", ttl=3600, data={"flags": 0, "tag": "iodef", "value": "mailto:ca@sdk-check.ro"}),
    dict(
        name=f"_submission._tcp.{ZONE}",
        type="SRV",
        ttl=3600,
        data={"priority": 0, "weight": 1, "port": 587, "target": f"mail.{ZONE}."},
    ),
]


@check
def records_of_every_type_drover_manages_are_created():
    made = {}
    for body in CREATES:
        record = CF.dns.records.create(zone_id=STATE["zone"], **body)
        assert record.id, record
        made[(body["name"], body["type"], body.get("content") or str(body.get("data")))] = record
    STATE["made"] = made
    expect(len(records()), len(CREATES), "records listed")


@check
def host_names_come_back_without_the_trailing_dot():
    mx = records(type="MX")
    expect([(r.content, r.priority) for r in mx], [(f"mail.{ZONE}", 10)], "MX")
    expect([r.content for r in records(type="CNAME")], ["shops.example.net"], "CNAME")
    expect([r.content for r in records(type="NS")], ["ns1.example.net"], "NS")


@check
def caa_comes_back_with_data_and_formatted_content():
    caa = sorted(records(type="CAA"), key=lambda r: r.data.tag)
    expect([(r.data.flags, r.data.tag, r.data.value) for r in caa],
           [(0, "iodef", "mailto:ca@sdk-check.ro"), (0, "issue", "letsencrypt.org")], "data")
    expect([r.content for r in caa], ['0 iodef "mailto:ca@sdk-check.ro"', '0 issue "letsencrypt.org"'], "content")


@check
def srv_comes_back_with_data():
    (srv,) = records(type="SRV")
    expect(srv.name, f"_submission._tcp.{ZONE}", "name")
    expect((srv.data.priority, srv.data.weight, srv.data.port, srv.data.target), (0, 1, 587, f"mail.{ZONE}"))


@check
def srv_needs_service_and_protocol_in_its_name():
    expect_error(
        cloudflare.BadRequestError,
        1004,
        lambda: CF.dns.records.create(
            zone_id=STATE["zone"], name=f"mail.{ZONE}", type="SRV", ttl=3600,
            data={"priority": 0, "weight": 1, "port": 993, "target": f"mail.{ZONE}"},
        ),
    )


@check
def lists_go_by_pages():
    REQUESTS.clear()
    every = list(CF.dns.records.list(zone_id=STATE["zone"], per_page=3))
    expect(len(every), len(CREATES), "records over pages")
    expect(len({r.id for r in every}), len(CREATES), "distinct records")
    pages = [r for r in REQUESTS if "/dns_records" in r]
    # The SDK asks for pages until one comes back empty.
    expect(len(pages), -(-len(CREATES) // 3) + 1, "requests")
    page = CF.dns.records.list(zone_id=STATE["zone"], per_page=3, page=2)
    expect(len(page.result), 3, "page 2")
    expect((page.result_info.page, page.result_info.per_page), (2, 3), "result_info")


@check
def lists_filter_on_name_exact():
    expect(summary(records(name={"exact": f"www.{ZONE}"})), [f"www.{ZONE} A 192.0.2.10"])
    expect(len(records(name={"exact": ZONE})), 6, "apex records")
    expect(records(name={"exact": f"nothing.{ZONE}"}), [], "absent name")


@check
def lists_filter_on_content_exact():
    expect(summary(records(content={"exact": "192.0.2.10"})),
           [f"sdk-check.ro A 192.0.2.10", f"www.{ZONE} A 192.0.2.10"])
    expect(summary(records(content={"exact": '0 issue "letsencrypt.org"'})),
           [f'{ZONE} CAA 0 issue "letsencrypt.org"'])


@check
def lists_filter_on_type_and_combine_filters():
    expect(len(records(type="A")), 3, "type A")
    expect(summary(records(type="A", name={"exact": ZONE})), [f"{ZONE} A 192.0.2.10"], "all")
    expect(summary(records(match="any", name={"exact": f"shop.{ZONE}"}, content={"exact": "192.0.2.11"})),
           [f"mail.{ZONE} A 192.0.2.11", f"shop.{ZONE} CNAME shops.example.net"], "any")
    expect(len(records(name={"endswith": f".{ZONE}"}, type="A")), 2, "endswith")


@check
def a_record_is_got_updated_patched_and_deleted_by_id():
    (www,) = records(name={"exact": f"www.{ZONE}"})
    expect(CF.dns.records.get(dns_record_id=www.id, zone_id=STATE["zone"]).content, "192.0.2.10")
    put = CF.dns.records.update(
        dns_record_id=www.id, zone_id=STATE["zone"], name=f"www.{ZONE}", type="A",
        content="203.0.113.7", ttl=120, proxied=False,
    )
    expect((put.id, put.content, put.ttl), (www.id, "203.0.113.7", 120), "PUT")
    patched = CF.dns.records.edit(dns_record_id=www.id, zone_id=STATE["zone"], name=f"www.{ZONE}", type="A", ttl=60)
    expect((patched.content, patched.ttl), ("203.0.113.7", 60), "PATCH keeps the content")
    (srv,) = records(type="SRV")
    moved = CF.dns.records.edit(
        dns_record_id=srv.id, zone_id=STATE["zone"], name=srv.name, type="SRV", ttl=3600,
        data={"priority": 0, "weight": 1, "port": 465, "target": f"mail.{ZONE}"},
    )
    expect((moved.id, moved.data.port), (srv.id, 465), "SRV patched")
    CF.dns.records.delete(dns_record_id=www.id, zone_id=STATE["zone"])
    expect(records(name={"exact": f"www.{ZONE}"}), [], "deleted")
    expect_error(cloudflare.NotFoundError, 81044,
                 lambda: CF.dns.records.get(dns_record_id=www.id, zone_id=STATE["zone"]))


@check
def an_identical_record_is_refused():
    expect_error(
        cloudflare.BadRequestError,
        81058,
        lambda: CF.dns.records.create(zone_id=STATE["zone"], **CREATES[0]),
    )


@check
def a_batch_runs_deletes_patches_puts_posts_in_one_call():
    (mail,) = records(name={"exact": f"mail.{ZONE}"}, type="A")
    (apex,) = records(name={"exact": ZONE}, type="A")
    (iodef,) = records(type="CAA", content={"exact": '0 iodef "mailto:ca@sdk-check.ro"'})
    REQUESTS.clear()
    result = CF.dns.records.batch(
        zone_id=STATE["zone"],
        deletes=[{"id": iodef.id}],
        patches=[{"id": apex.id, "content": "203.0.113.7"}],
        puts=[{"id": mail.id, "name": f"mail.{ZONE}", "type": "A", "content": "203.0.113.8", "ttl": 300}],
        posts=[
            {"name": f"www.{ZONE}", "type": "A", "content": "203.0.113.7", "ttl": 300},
            {"name": ZONE, "type": "CAA", "ttl": 3600, "data": {"flags": 0, "tag": "issuewild", "value": ";"}},
            {"name": f"_imaps._tcp.{ZONE}", "type": "SRV", "ttl": 3600,
             "data": {"priority": 0, "weight": 1, "port": 993, "target": f"mail.{ZONE}."}},
        ],
    )
    expect(len(REQUESTS), 1, "requests")
    expect([len(result.deletes), len(result.patches), len(result.puts), len(result.posts)], [1, 1, 1, 3])
    expect(result.patches[0].id, apex.id, "patch keeps the id")
    expect(summary(records(type="A")),
           [f"mail.{ZONE} A 203.0.113.8", f"{ZONE} A 203.0.113.7", f"www.{ZONE} A 203.0.113.7"])
    expect(sorted(r.content for r in records(type="CAA")), ['0 issue "letsencrypt.org"', '0 issuewild ";"'])


@check
def a_failing_batch_changes_nothing():
    before = summary(records())
    expect_error(
        cloudflare.APIStatusError,
        81044,
        lambda: CF.dns.records.batch(
            zone_id=STATE["zone"],
            deletes=[{"id": "0" * 32}],
            posts=[{"name": f"new.{ZONE}", "type": "A", "content": "192.0.2.99", "ttl": 300}],
        ),
    )
    expect(summary(records()), before, "zone unchanged")


@check
def the_zone_exports_as_a_bind_file():
    text = CF.dns.records.export(zone_id=STATE["zone"])
    assert isinstance(text, str) and "IN\tSOA\t" in text, text[:200]
    zone = dns.zone.from_text(text, origin=ZONE + ".", relativize=False, check_origin=False)
    served = {
        (name.to_text(), dns.rdatatype.to_text(rdataset.rdtype), rdata.to_text())
        for name, rdataset in zone.iterate_rdatasets()
        for rdata in rdataset
    }
    for wanted in [
        (f"{ZONE}.", "CAA", '0 issue "letsencrypt.org"'),
        (f"_submission._tcp.{ZONE}.", "SRV", f"0 1 465 mail.{ZONE}."),
        (f"_imaps._tcp.{ZONE}.", "SRV", f"0 1 993 mail.{ZONE}."),
        (f"{ZONE}.", "MX", f"10 mail.{ZONE}."),
        (f"shop.{ZONE}.", "CNAME", "shops.example.net."),
        (f"www.{ZONE}.", "A", "203.0.113.7"),
        (f"{ZONE}.", "TXT", '"v=spf1 a mx ip4:192.0.2.10 ~all"'),
    ]:
        assert wanted in served, f"{wanted} not in the export:\n{text}"


@check
def the_zone_is_deleted():
    CF.zones.delete(zone_id=STATE["zone"])
    expect(list(CF.zones.list(name=ZONE)), [], "listed after delete")
    expect_error(cloudflare.NotFoundError, None, lambda: CF.zones.get(zone_id=STATE["zone"]))


# octoDNS -----------------------------------------------------------------------------------

OCTO_ZONE = "octodns-check.ro."


def octodns_provider():
    from octodns_cloudflare import CloudflareProvider

    return CloudflareProvider(
        "cloudflare", token=TOKEN, account_id=ACCOUNT, api_url=URL, pagerules=False,
        retry_period=0, min_ttl=60,
    )


def octodns_wanted():
    from octodns.record import Record
    from octodns.zone import Zone

    zone = Zone(OCTO_ZONE, [])
    for name, data in [
        ("", {"type": "A", "ttl": 300, "values": ["192.0.2.20"]}),
        ("", {"type": "MX", "ttl": 3600, "values": [{"preference": 10, "exchange": f"mail.{OCTO_ZONE}"}]}),
        ("", {"type": "CAA", "ttl": 3600, "values": [
            {"flags": 0, "tag": "issue", "value": "letsencrypt.org"},
            {"flags": 0, "tag": "iodef", "value": "mailto:ca@octodns-check.ro"},
        ]}),
        ("www", {"type": "CNAME", "ttl": 300, "value": f"{OCTO_ZONE}"}),
        ("mail", {"type": "A", "ttl": 300, "values": ["192.0.2.21"]}),
        ("_submission._tcp", {"type": "SRV", "ttl": 3600, "values": [
            {"priority": 0, "weight": 1, "port": 587, "target": f"mail.{OCTO_ZONE}"},
        ]}),
        ("_imaps._tcp", {"type": "SRV", "ttl": 3600, "values": [
            {"priority": 0, "weight": 1, "port": 993, "target": f"mail.{OCTO_ZONE}"},
        ]}),
        ("", {"type": "TXT", "ttl": 3600, "values": ["v=spf1 a mx -all"]}),
    ]:
        zone.add_record(Record.new(zone, name, data))
    return zone


@check
def octodns_creates_the_zone_and_its_records():
    provider = octodns_provider()
    plan = provider.plan(octodns_wanted())
    assert plan is not None and plan.changes, "octoDNS planned nothing"
    applied = provider.apply(plan)
    expect(applied, len(plan.changes), "changes applied")


@check
def octodns_reads_back_what_it_wrote_and_plans_nothing():
    from octodns.zone import Zone

    provider = octodns_provider()
    existing = Zone(OCTO_ZONE, [])
    provider.populate(existing)
    expect(sorted((r.name, r._type) for r in existing.records),
           sorted((r.name, r._type) for r in octodns_wanted().records), "records")
    by_key = {(r.name, r._type): r for r in existing.records}
    expect(sorted((v.flags, v.tag, v.value) for v in by_key[("", "CAA")].values),
           [(0, "iodef", "mailto:ca@octodns-check.ro"), (0, "issue", "letsencrypt.org")], "CAA")
    expect([(v.priority, v.weight, v.port, v.target) for v in by_key[("_submission._tcp", "SRV")].values],
           [(0, 1, 587, f"mail.{OCTO_ZONE}")], "SRV")
    expect([(v.preference, v.exchange) for v in by_key[("", "MX")].values], [(10, f"mail.{OCTO_ZONE}")], "MX")
    plan = octodns_provider().plan(octodns_wanted())
    assert plan is None, f"a second plan has changes: {plan.changes}"


@check
def octodns_changes_an_srv_port_and_removes_a_caa_value():
    from octodns.record import Record

    wanted = octodns_wanted()
    wanted.add_record(Record.new(wanted, "_submission._tcp", {"type": "SRV", "ttl": 3600, "values": [
        {"priority": 0, "weight": 1, "port": 465, "target": f"mail.{OCTO_ZONE}"},
    ]}), replace=True)
    wanted.add_record(Record.new(wanted, "", {"type": "CAA", "ttl": 3600, "values": [
        {"flags": 0, "tag": "issue", "value": "letsencrypt.org"},
    ]}), replace=True)
    provider = octodns_provider()
    plan = provider.plan(wanted)
    expect(len(plan.changes), 2, "changes")
    provider.apply(plan)
    expect(octodns_provider().plan(wanted), None, "plan after apply")


def main() -> int:
    passed = failed = 0
    for fn in CHECKS:
        name = fn.__name__.replace("_", " ")
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported, then the next check runs
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(limit=4)
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
