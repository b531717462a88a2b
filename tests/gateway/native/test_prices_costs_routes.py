"""Native REST routes the README and docs promise (issue 16): the price book and costs (PriceService,
CostService), an event fetched by its request id, and usage with only the metrics asked for."""

import datetime as dt

DAY = dt.datetime(2025, 7, 4, tzinfo=dt.UTC)


def stamp(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_prices_and_costs_over_rest(http, new_tenant):
    t = await new_tenant()
    book = {"versions": [{"model": "m-rest", "effective_from": stamp(DAY), "prices": [
        {"usage_type": "input", "unit_price": "0.001"}, {"usage_type": "output", "unit_price": "0.002"}]}]}
    created = await http.post("/v1/prices", json=book, headers=t.admin.headers)
    assert created.status_code == 200, created.text
    version = created.json()["results"][0]["version"]["version"]
    assert created.json()["results"][0]["created"] is True

    listed = await http.get("/v1/prices?model=m-rest", headers=t.admin.headers)
    assert [v["version"] for v in listed.json()["versions"]] == [version]
    one = await http.get(f"/v1/prices/{version}", headers=t.member.headers)  # members read the book
    assert one.status_code == 200 and one.json()["model"] == "m-rest"
    refused = await http.post("/v1/prices", json=book, headers=t.member.headers)
    assert refused.status_code == 403 and set(refused.json()) == {"code", "message", "details"}

    noon = stamp(DAY + dt.timedelta(hours=12))
    for i, model in enumerate(("m-rest", "m-unknown")):
        recorded = await http.post("/v1/events", json={"kind": "completions", "model": model, "timestamp": noon,
                                                        "input_tokens": 10, "output_tokens": 5 + i},
                                   headers=t.admin.headers)
        assert recorded.json()["outcome"] == "OUTCOME_RECORDED", recorded.text
    costs = await http.get(f"/v1/costs?start_time={stamp(DAY)}&end_time={stamp(DAY + dt.timedelta(days=1))}"
                           "&group_by=line_item", headers=t.admin.headers)
    assert costs.status_code == 200, costs.text
    [bucket] = costs.json()["buckets"]
    assert bucket["unpriced_events"] == 1  # m-unknown: flagged, not costed at 0
    assert sorted((r["line_item"], r["amount"]["value"], r["quantity"]) for r in bucket["results"]) == [
        ("m-rest, input", "0.01", "10"), ("m-rest, output", "0.01", "5")]
    unpriced = await http.get(f"/v1/unpriced_events?start_time={stamp(DAY)}", headers=t.admin.headers)
    assert [e["event"]["model"] for e in unpriced.json()["events"]] == ["m-unknown"]


async def test_an_event_is_fetched_by_its_request_id(http, new_tenant):
    t = await new_tenant()
    first = await http.post("/v1/events", json={"kind": "completions", "request_id": "req-1", "input_tokens": 3},
                            headers=t.admin.headers)
    event_id = first.json()["event_id"]
    by_request = await http.get("/v1/events/-?request_id=req-1", headers=t.admin.headers)
    assert by_request.status_code == 200, by_request.text
    assert (by_request.json()["event_id"], by_request.json()["input_tokens"]) == (event_id, 3)
    both = await http.get(f"/v1/events/{event_id}?request_id=req-1", headers=t.admin.headers)
    assert both.json()["event_id"] == event_id
    other = await http.post("/v1/events", json={"kind": "completions", "request_id": "req-2"}, headers=t.admin.headers)
    mismatch = await http.get(f"/v1/events/{other.json()['event_id']}?request_id=req-1", headers=t.admin.headers)
    assert mismatch.status_code == 404
    assert (await http.get("/v1/events/-?request_id=nope", headers=t.admin.headers)).status_code == 404
    assert (await http.get("/v1/events/-", headers=t.admin.headers)).status_code == 400
    # Another organization's request id names nothing here.
    stranger = await new_tenant()
    assert (await http.get("/v1/events/-?request_id=req-1", headers=stranger.admin.headers)).status_code == 404


async def test_metrics_not_asked_for_are_left_out(http, new_tenant):
    t = await new_tenant()
    noon = stamp(DAY + dt.timedelta(hours=12))
    for model, tokens in (("a", 7), ("b", 0)):
        await http.post("/v1/events", json={"kind": "completions", "model": model, "timestamp": noon,
                                            "input_tokens": tokens, "output_tokens": 3}, headers=t.admin.headers)
    span = f"start_time={stamp(DAY)}&end_time={stamp(DAY + dt.timedelta(days=1))}&group_by=model"
    asked = await http.get(f"/v1/usage?{span}&metrics=input_tokens", headers=t.admin.headers)
    assert asked.status_code == 200, asked.text
    groups = {g["key"]["model"]: g["metrics"] for g in asked.json()["buckets"][0]["groups"]}
    assert groups == {"a": {"events": 1, "input_tokens": 7}, "b": {"events": 1, "input_tokens": 0}}  # 0: zero
    two = await http.get(f"/v1/usage?{span}&metrics=output_tokens&metrics=cost", headers=t.admin.headers)
    assert {g["key"]["model"]: set(g["metrics"]) for g in two.json()["buckets"][0]["groups"]} == {
        "a": {"events", "output_tokens", "cost"}, "b": {"events", "output_tokens", "cost"}}
    everything = await http.get(f"/v1/usage?{span}", headers=t.admin.headers)  # none asked: every metric
    metrics = everything.json()["buckets"][0]["groups"][0]["metrics"]
    assert {"input_tokens", "output_tokens", "images", "cost", "unpriced_events"} <= set(metrics)
