"""Drives a running drover with the Python client generated from its OpenAPI document:
create, list and get of customers, plans, servers and services, and a service's activation,
each answer parsed by the generated models (a field the document does not describe, or one it
describes wrongly, fails here). Prints how many passed; run by ./run, whose closing line counts it once."""

import os
import sys
import traceback

sys.path.insert(0, os.environ["CLIENT_DIR"])

from drover_client import AuthenticatedClient  # noqa: E402
from drover_client.api.customers import create_customer, get_customer, list_customers  # noqa: E402
from drover_client.api.plans import create_plan, get_plan, list_plans  # noqa: E402
from drover_client.api.servers import create_server, get_server, list_servers  # noqa: E402
from drover_client.api.services import (  # noqa: E402
    create_service,
    get_service,
    list_services,
    move_service,
)
from drover_client.models import (  # noqa: E402
    Customer,
    CustomerSpec,
    ErrorBody,
    NewServiceRequest,
    Plan,
    PlanSpec,
    Server,
    ServerSpec,
    Service,
    ServiceCreated,
    TransitionOutcome,
)

client = AuthenticatedClient(
    base_url=os.environ["DROVER_URL"], token=os.environ["DROVER_TOKEN"], raise_on_unexpected_status=True
)
passed = failed = 0


def check(name, body):
    global passed, failed
    try:
        body()
        passed += 1
        print(f"ok   {name}")
    except Exception:
        failed += 1
        print(f"FAIL {name}")
        traceback.print_exc()


def answer(response, status, model):
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), type(response.parsed)
    return response.parsed


state = {}


def customers():
    spec = CustomerSpec(name="Ana Pop", email="ana@example.ro", external_ref="crm-1001")
    made = answer(create_customer.sync_detailed(client=client, body=spec, idempotency_key="c-1"), 201, Customer)
    assert made.name == "Ana Pop" and made.external_ref == "crm-1001"
    listed = list_customers.sync(client=client)
    assert [c.id for c in listed] == [made.id], listed
    got = answer(get_customer.sync_detailed(made.id, client=client), 200, Customer)
    assert got.to_dict() == made.to_dict()
    missing = get_customer.sync_detailed(made.id + 1000, client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, ErrorBody)
    assert missing.parsed.error.code == "not_found"
    state["customer"] = made.id


def plans():
    spec = PlanSpec.from_dict({"name": "Web 10GB", "disk_quota_mb": 10240, "features": ["web", "dns", "mail"]})
    made = answer(create_plan.sync_detailed(client=client, body=spec), 201, Plan)
    assert made.disk_quota_mb == 10240 and [f.value for f in made.features] == ["web", "dns", "mail"]
    assert [p.id for p in list_plans.sync(client=client)] == [made.id]
    assert answer(get_plan.sync_detailed(made.id, client=client), 200, Plan).to_dict() == made.to_dict()
    state["plan"] = made.id


def servers():
    spec = ServerSpec.from_dict(
        {"name": "vm1", "hostname": "vm1.example.net", "capacity": 200,
         "credentials": "env:DROVER_SECRET_VM1", "ipv4": "192.0.2.10", "tags": ["region-eu"]}
    )
    made = answer(create_server.sync_detailed(client=client, body=spec), 201, Server)
    assert made.hostname == "vm1.example.net" and made.state.value == "healthy"
    assert [s.id for s in list_servers.sync(client=client)] == [made.id]
    assert answer(get_server.sync_detailed(made.id, client=client), 200, Server).to_dict() == made.to_dict()
    refused = create_server.sync_detailed(client=client, body=spec)
    assert refused.status_code == 409 and isinstance(refused.parsed, ErrorBody)


def services():
    customer, plan = state["customer"], state["plan"]
    request = NewServiceRequest(customer_id=customer, plan_id=plan, domain="știri.ro")
    made = answer(create_service.sync_detailed(client=client, body=request), 201, ServiceCreated)
    assert made.domain == "xn--tiri-pxb.ro" and made.domain_unicode == "știri.ro", made
    assert made.warnings == [], made.warnings
    cedilla = NewServiceRequest(customer_id=customer, plan_id=plan, domain="ţară.ro")
    warned = answer(create_service.sync_detailed(client=client, body=cedilla), 201, ServiceCreated)
    assert [w.code for w in warned.warnings] == ["cedilla_letters"], warned.warnings
    activated = answer(move_service.sync_detailed(made.id, "activate", client=client), 202, TransitionOutcome)
    assert activated.job_id is not None
    listed = [(s.id, s.status.value) for s in list_services.sync(client=client)]
    assert listed == [(made.id, "active"), (warned.id, "pending")], listed
    got = answer(get_service.sync_detailed(made.id, client=client), 200, Service)
    assert got.account_id == made.account_id and got.status.value == "active"
    bad = NewServiceRequest(customer_id=customer, plan_id=plan, domain="-x-.ro")
    refused = create_service.sync_detailed(client=client, body=bad)
    assert refused.status_code == 422 and refused.parsed.error.code == "invalid_domain", refused.content


for name, body in [("customers", customers), ("plans", plans), ("servers", servers), ("services", services)]:
    check(name, body)
print(f"the generated client: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
