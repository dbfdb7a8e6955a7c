"""Accounts: create, read, list, idempotent re-create, validation (API contract "Accounts")."""

import datetime
import json

import pytest

from .ledgerd_harness import (
    ACCOUNT_FIELDS, RFC3339_MS, UUIDV7, assert_json, assert_problem, create_account, list_all,
    new_ledger, uid,
)


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)


def test_create_returns_201_with_representation_and_location(client):
    ledger = new_ledger()
    aid = uid("acct")
    r = client.post("/v1/accounts", {"id": aid, "ledger": ledger, "code": 7,
                                     "flags": ["debits_must_not_exceed_credits"],
                                     "metadata": {"owner": "alice"}})
    a = assert_json(r, 201)
    assert r.headers.get("location") == "/v1/accounts/" + aid
    assert set(a) == ACCOUNT_FIELDS
    assert a["id"] == aid
    assert a["ledger"] == ledger
    assert a["code"] == 7
    assert a["flags"] == ["debits_must_not_exceed_credits"]
    assert a["metadata"] == {"owner": "alice"}
    for k in ("debits_pending", "debits_posted", "credits_pending", "credits_posted"):
        assert a[k] == "0"
    assert RFC3339_MS.match(a["created_at"]), a
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((parse_time(a["created_at"]) - now).total_seconds()) < 60


def test_get_returns_the_stored_account(client):
    a = create_account(client, new_ledger(), code=3, metadata={"k": [1, 2]})
    r = client.get("/v1/accounts/" + a["id"])
    assert assert_json(r, 200) == a


def test_defaults_when_optional_fields_omitted(client):
    a = create_account(client, new_ledger())
    assert a["flags"] == []
    assert a["metadata"] is None


def test_generated_id_is_uuidv7_matching_created_at(client):
    ledger = new_ledger()
    made = [create_account(client, ledger) for _ in range(20)]
    stamps = []
    for a in made:
        assert UUIDV7.match(a["id"]), a["id"]
        ms = int(a["id"].replace("-", "")[:12], 16)
        created = parse_time(a["created_at"]).timestamp() * 1000
        assert abs(ms - created) < 5000, a
        stamps.append(ms)
    assert stamps == sorted(stamps), "UUIDv7 timestamps must follow creation order"
    assert len({a["id"] for a in made}) == len(made)


def test_get_unknown_account_is_404(client):
    assert_problem(client.get("/v1/accounts/" + uid("none")), 404, "account_not_found")


def test_same_id_same_fields_is_200_with_stored_account(client):
    ledger = new_ledger()
    aid = uid("acct")
    body = {"id": aid, "ledger": ledger, "code": 9, "metadata": {"x": 1}}
    first = assert_json(client.post("/v1/accounts", body), 201)
    r = client.post("/v1/accounts", body)
    assert assert_json(r, 200) == first


def test_same_id_with_explicit_defaults_is_200(client):
    ledger = new_ledger()
    aid = uid("acct")
    first = assert_json(client.post("/v1/accounts", {"id": aid, "ledger": ledger, "code": 1}), 201)
    r = client.post("/v1/accounts", {"id": aid, "ledger": ledger, "code": 1, "flags": []})
    assert assert_json(r, 200) == first


@pytest.mark.parametrize("change", [
    {"code": 2},
    {"ledger": "OTHER"},
    {"flags": ["credits_must_not_exceed_debits"]},
    {"metadata": {"x": 2}},
    {"metadata": None},
])
def test_same_id_different_fields_is_409(client, change):
    ledger = new_ledger()
    aid = uid("acct")
    body = {"id": aid, "ledger": ledger, "code": 1, "metadata": {"x": 1}}
    first = assert_json(client.post("/v1/accounts", body), 201)
    changed = dict(body)
    changed.update(change)
    if changed.get("metadata") is None:
        del changed["metadata"]
    assert_problem(client.post("/v1/accounts", changed), 409, "exists_with_different_fields")
    assert client.get("/v1/accounts/" + aid).json == first


def test_metadata_returned_verbatim_without_whitespace(client):
    raw = ('{"ledger":"%s","code":1,"metadata": { "z" : 1 , "a" : { "n" : [ 1 , 2.5 , -3 ] },'
           ' "t" : true , "nul" : null , "s" : "x y" } }' % new_ledger())
    r = client.post("/v1/accounts", raw)
    assert r.status == 201, r
    compact = b'"metadata":{"z":1,"a":{"n":[1,2.5,-3]},"t":true,"nul":null,"s":"x y"}'
    assert compact in r.body, r
    aid = r.json["id"]
    assert compact in client.get("/v1/accounts/" + aid).body


def test_metadata_string_escapes_returned_byte_for_byte(client):
    raw = ('{"ledger":"%s","code":1,"metadata":{"e":"caf\\u00e9 \\"q\\" \\n \\/"}}' % new_ledger())
    r = client.post("/v1/accounts", raw)
    assert r.status == 201, r
    assert b'"metadata":{"e":"caf\\u00e9 \\"q\\" \\n \\/"}' in r.body, r
    assert r.json["metadata"] == {"e": 'café "q" \n /'}


def metadata_of_size(n):
    """A metadata object whose compact JSON is exactly n bytes."""
    base = '{"p":""}'
    return {"p": "x" * (n - len(base))}


def test_metadata_4096_bytes_accepted_4097_refused(client):
    ledger = new_ledger()
    ok = metadata_of_size(4096)
    assert len(json.dumps(ok, separators=(",", ":"))) == 4096
    r = client.post("/v1/accounts", {"ledger": ledger, "code": 1, "metadata": ok})
    assert assert_json(r, 201)["metadata"] == ok
    big = metadata_of_size(4097)
    assert_problem(client.post("/v1/accounts", {"ledger": ledger, "code": 1, "metadata": big}),
                   400, "metadata_invalid", field="metadata")


def test_metadata_limit_applies_to_compact_form(client):
    ok = metadata_of_size(4096)
    padded = json.dumps(ok, indent=40).replace('"p"', '    "p"    ')
    raw = '{"ledger":"%s","code":1,"metadata":%s}' % (new_ledger(), padded)
    assert len(padded) > 4096
    r = client.post("/v1/accounts", raw)
    assert assert_json(r, 201)["metadata"] == ok


@pytest.mark.parametrize("metadata", [[1, 2], "text", 5, True])
def test_metadata_not_an_object_is_400(client, metadata):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1, "metadata": metadata})
    assert_problem(r, 400, "metadata_invalid", field="metadata")


def test_missing_ledger_is_field_required(client):
    assert_problem(client.post("/v1/accounts", {"code": 1}), 400, "field_required",
                   field="ledger")


def test_missing_code_is_field_required(client):
    assert_problem(client.post("/v1/accounts", {"ledger": new_ledger()}), 400,
                   "field_required", field="code")


@pytest.mark.parametrize("ledger", ["usd", "", "A" * 17, "US-D", "US D", "ÜSD"])
def test_ledger_invalid(client, ledger):
    assert_problem(client.post("/v1/accounts", {"ledger": ledger, "code": 1}), 400,
                   "ledger_invalid", field="ledger")


def test_ledger_wrong_type_is_field_invalid(client):
    assert_problem(client.post("/v1/accounts", {"ledger": 5, "code": 1}), 400,
                   "field_invalid", field="ledger")


def test_ledger_of_16_characters_accepted(client):
    ledger = "Z_" + new_ledger()[2:16]
    assert len(ledger) == 16
    assert create_account(client, ledger)["ledger"] == ledger


@pytest.mark.parametrize("code", [-1, 65536, 1.5, 1e3, 99999999999])
def test_code_invalid(client, code):
    assert_problem(client.post("/v1/accounts", {"ledger": new_ledger(), "code": code}), 400,
                   "code_invalid", field="code")


@pytest.mark.parametrize("code", [0, 65535])
def test_code_bounds_accepted(client, code):
    assert create_account(client, new_ledger(), code=code)["code"] == code


def test_code_as_string_is_refused(client):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": "1"})
    assert r.status == 400, r
    assert r.json["code"] in ("field_invalid", "code_invalid"), r
    assert_problem(r, 400, r.json["code"], field="code")


@pytest.mark.parametrize("bad", ["", "-abc", ".abc", "a" * 65, "a b", "a/b", "a?b", "é",
                                 "a\u0000b"])
def test_id_invalid(client, bad):
    r = client.post("/v1/accounts", {"id": bad, "ledger": new_ledger(), "code": 1})
    assert_problem(r, 400, "id_invalid", field="id")


def test_id_wrong_type_is_refused(client):
    r = client.post("/v1/accounts", {"id": 12, "ledger": new_ledger(), "code": 1})
    assert r.status == 400, r
    assert r.json["code"] in ("field_invalid", "id_invalid"), r


@pytest.mark.parametrize("prefix", ["A0._:-z", "9", "x:y.z-1_2"])
def test_id_grammar_accepted(client, prefix):
    aid = prefix + uid("")[1:17]
    a = create_account(client, new_ledger(), id=aid)
    assert a["id"] == aid
    assert client.get("/v1/accounts/" + aid).status == 200


def test_id_of_64_characters_accepted(client):
    aid = ("L" + uid("")[1:] * 3)[:64]
    assert len(aid) == 64
    assert create_account(client, new_ledger(), id=aid)["id"] == aid
    assert client.get("/v1/accounts/" + aid).status == 200


@pytest.mark.parametrize("flags", [["bogus"], ["pending"], "debits_must_not_exceed_credits",
                                   [1], ["debits_must_not_exceed_credits",
                                         "debits_must_not_exceed_credits"]])
def test_flags_invalid(client, flags):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1, "flags": flags})
    assert_problem(r, 400, "flag_invalid", field="flags[]")


def test_both_balance_limit_flags_are_mutually_exclusive(client):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1,
                                     "flags": ["debits_must_not_exceed_credits",
                                               "credits_must_not_exceed_debits"]})
    assert_problem(r, 400, "flags_are_mutually_exclusive", field="flags")


def test_unknown_field(client):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1, "colour": "red"})
    assert_problem(r, 400, "unknown_field", field="colour")


def test_balances_are_read_only(client):
    r = client.post("/v1/accounts", {"ledger": new_ledger(), "code": 1, "credits_posted": "100"})
    assert_problem(r, 400, "unknown_field", field="credits_posted")


def test_every_validation_error_is_listed(client):
    r = client.post("/v1/accounts", {"ledger": "bad", "code": -5, "id": "-x"})
    p = assert_problem(r, 400, r.json["code"])
    fields = {(e["field"], e["code"]) for e in p["errors"]}
    assert {("ledger", "ledger_invalid"), ("code", "code_invalid"),
            ("id", "id_invalid")} <= fields, p


def test_list_by_ledger_in_commit_order(client):
    ledger = new_ledger()
    other = new_ledger()
    made = []
    for i in range(7):
        made.append(create_account(client, ledger, code=i)["id"])
        create_account(client, other)
    got = list_all(client, "/v1/accounts?ledger=" + ledger, limit=3)
    assert [a["id"] for a in got] == made
    assert all(a["ledger"] == ledger for a in got)


def test_list_without_ledger_includes_every_ledger(client):
    ids = [create_account(client, new_ledger())["id"] for _ in range(3)]
    listed = [a["id"] for a in list_all(client, "/v1/accounts", limit=1000)]
    positions = [listed.index(i) for i in ids]
    assert positions == sorted(positions)


def test_list_of_empty_ledger(client):
    r = client.get("/v1/accounts?ledger=" + new_ledger())
    assert assert_json(r, 200) == {"data": [], "next_cursor": None}


def test_account_transfers_of_unknown_account_is_404(client):
    assert_problem(client.get(f"/v1/accounts/{uid('none')}/transfers"), 404,
                   "account_not_found")
