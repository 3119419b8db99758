//! openapi.json is the contract billing systems code against; these tests keep it true.
//!
//! Each test compares the document with the code it describes — the routes in template.yaml, the
//! charge view, `ChargeStatus`, `NewCharge::parse`, the currencies `Money` knows, the error codes
//! in the sources and the charges handler's own answers — so a change to one that is not made to
//! the other fails here. None of them needs the local stack.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use charges::handler::{Charges, handle};
use paybridge::Error;
use paybridge::adapters::dynamodb::Table;
use paybridge::adapters::gateways::GatewayRouter;
use paybridge::adapters::sqs::SqsWorkQueue;
use paybridge::domain::{Charge, ChargeId, ChargeStatus, Currency, Failure, Gateway, Money};
use paybridge::services::charges::create::{
    MAX_METADATA_KEY_LEN, MAX_METADATA_KEYS, MAX_METADATA_VALUE_LEN, NewCharge,
};
use paybridge::services::charges::{MAX_REQUEST_BYTES, view};
use paybridge_tests::api_request_with_query;
use serde_json::{Map, Value, json};

const OPENAPI: &str = include_str!("../../openapi.json");
const TEMPLATE: &str = include_str!("../../template.yaml");

/// The template.yaml functions whose `HttpApi` routes the document describes. When the refunds
/// routes are described, add `RefundsFunction` here.
const DOCUMENTED_FUNCTIONS: &[&str] = &["ChargesFunction"];

/// The sources whose `Error` constructors make the error codes the documented routes answer with.
const ERROR_SOURCES: &[(&str, &str)] = &[
    (
        "functions/charges/src/handler.rs",
        include_str!("../../functions/charges/src/handler.rs"),
    ),
    (
        "shared/src/http.rs",
        include_str!("../../shared/src/http.rs"),
    ),
    (
        "shared/src/services/idempotency.rs",
        include_str!("../../shared/src/services/idempotency.rs"),
    ),
    (
        "shared/src/services/charges/mod.rs",
        include_str!("../../shared/src/services/charges/mod.rs"),
    ),
    (
        "shared/src/services/charges/create.rs",
        include_str!("../../shared/src/services/charges/create.rs"),
    ),
    (
        "shared/src/services/charges/read.rs",
        include_str!("../../shared/src/services/charges/read.rs"),
    ),
    (
        "shared/src/services/charges/capture.rs",
        include_str!("../../shared/src/services/charges/capture.rs"),
    ),
    (
        "shared/src/services/charges/cancel.rs",
        include_str!("../../shared/src/services/charges/cancel.rs"),
    ),
    (
        "shared/src/services/charges/retry.rs",
        include_str!("../../shared/src/services/charges/retry.rs"),
    ),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---- reading the document ---------------------------------------------------------------------

fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is valid JSON")
}

/// The value a local `$ref` (`#/components/…`) points at.
fn pointee<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `value`, with `$ref`s followed.
fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                value = pointee(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}"));
            }
            None => return value,
        }
    }
    panic!("a $ref chain longer than 16")
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("components.schemas.{name} is missing"))
}

/// One operation of the document.
struct Operation<'a> {
    method: String,
    path: String,
    op: &'a Value,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The response documented for `status`, `$ref` followed.
    fn response<'d>(&'d self, doc: &'d Value, status: u16) -> Option<&'d Value> {
        self.op
            .pointer(&format!("/responses/{status}"))
            .map(|r| resolve(doc, r))
    }

    fn parameters<'d>(&'d self, doc: &'d Value) -> Vec<&'d Value> {
        self.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(doc, p))
            .collect()
    }

    /// Whether the response for `status` names `code` in its description.
    fn documents(&self, doc: &Value, status: u16, code: &str) -> bool {
        self.response(doc, status)
            .and_then(|r| r["description"].as_str())
            .is_some_and(|d| d.contains(&format!("`{code}`")))
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if HTTP_METHODS.contains(&method.as_str()) {
                out.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    op,
                });
            }
        }
    }
    out
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The JSON types a schema's own `type` allows (`None`: it does not say).
fn own_types(schema: &Value) -> Option<BTreeSet<String>> {
    match &schema["type"] {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

/// Checks `value` against the parts of JSON Schema this document uses: `$ref`, `anyOf`/`oneOf`,
/// `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`, `items`, and the
/// bounds. Stricter than JSON Schema in one way: an object key that is not in `properties` is
/// accepted only where `additionalProperties` gives it a schema, so a field missing from the
/// document cannot hide in a sample.
fn shape(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema[key].as_array() {
            let errors: Vec<String> = branches
                .iter()
                .filter_map(|b| shape(doc, b, value, at).err())
                .collect();
            if errors.len() == branches.len() {
                return Err(format!(
                    "{at}: fits no branch of {key}: {}",
                    errors.join("; ")
                ));
            }
        }
    }
    let actual = json_type(value);
    if let Some(types) = own_types(schema) {
        let ok = types.contains(actual) || (actual == "integer" && types.contains("number"));
        if !ok {
            return Err(format!("{at}: {actual} is not one of {types:?}"));
        }
    }
    if let Some(c) = schema.get("const").filter(|c| *c != value) {
        return Err(format!("{at}: {value} is not the const {c}"));
    }
    if let Some(e) = schema["enum"].as_array().filter(|e| !e.contains(value)) {
        return Err(format!("{at}: {value} is not in the enum {e:?}"));
    }
    if let Some(n) = value.as_i64() {
        if schema["minimum"].as_i64().is_some_and(|min| n < min) {
            return Err(format!("{at}: {n} is below the minimum"));
        }
        if schema["maximum"].as_i64().is_some_and(|max| n > max) {
            return Err(format!("{at}: {n} is above the maximum"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| len < min)
            || schema["maxLength"].as_u64().is_some_and(|max| len > max)
        {
            return Err(format!("{at}: the length of {s:?} is out of bounds"));
        }
    }
    match value {
        Value::Object(map) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let key = required.as_str().unwrap_or_default();
                if !map.contains_key(key) {
                    return Err(format!("{at}: the required `{key}` is missing"));
                }
            }
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties");
            if properties.is_none() && additional.is_none() {
                return Ok(());
            }
            for (key, item) in map {
                let here = format!("{at}.{key}");
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) => shape(doc, s, item, &here)?,
                    (None, Some(s)) if s.is_object() => shape(doc, s, item, &here)?,
                    (None, _) => return Err(format!("{here}: not in the schema's properties")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    shape(doc, s, item, &format!("{at}[{i}]"))?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn assert_shape(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Err(e) = shape(doc, schema, value, at) {
        panic!("{e}\nvalue: {value:#}");
    }
}

/// Every example of every request and response body: (where, schema, value).
fn media_examples(doc: &Value) -> Vec<(String, &Value, &Value)> {
    let mut out = Vec::new();
    for op in operations(doc) {
        let mut media = Vec::new();
        if let Some(body) = op.op.get("requestBody") {
            media.push(("request".to_owned(), resolve(doc, body)));
        }
        for (status, response) in op.op["responses"].as_object().into_iter().flatten() {
            media.push((status.clone(), resolve(doc, response)));
        }
        for (what, holder) in media {
            for (ct, mt) in holder["content"].as_object().into_iter().flatten() {
                let examples = mt["examples"].as_object().into_iter().flatten();
                for (name, example) in examples {
                    let value = &resolve(doc, example)["value"];
                    let at = format!("{} {what} {ct} example {name}", op.name());
                    out.push((at, &mt["schema"], value));
                }
                if let Some(value) = mt.get("example") {
                    out.push((
                        format!("{} {what} {ct} example", op.name()),
                        &mt["schema"],
                        value,
                    ));
                }
            }
        }
    }
    out
}

// ---- reading the code -------------------------------------------------------------------------

/// `(METHOD, path)` of every `HttpApi` event of `function` in template.yaml. A line-based reader:
/// the function is a resource at two spaces of indent, its events sit under `Events:` one indent
/// level apart, and each has `Type:`, `Path:` and `Method:` lines.
fn template_routes(function: &str) -> BTreeSet<(String, String)> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let blank = |line: &str| line.trim().is_empty() || line.trim_start().starts_with('#');
    let lines: Vec<&str> = TEMPLATE.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("  {function}:"))
        .unwrap_or_else(|| panic!("template.yaml has no resource {function}"));
    let body: Vec<&str> = lines[start + 1..]
        .iter()
        .copied()
        .take_while(|l| blank(l) || indent(l) > 2)
        .collect();
    let events_at = body
        .iter()
        .position(|l| l.trim() == "Events:")
        .unwrap_or_else(|| panic!("{function} has no Events"));
    let events_indent = indent(body[events_at]);
    let events: Vec<&str> = body[events_at + 1..]
        .iter()
        .copied()
        .filter(|l| !blank(l))
        .take_while(|l| indent(l) > events_indent)
        .collect();
    let name_indent = events.first().map(|l| indent(l)).unwrap_or_default();

    let mut routes = BTreeSet::new();
    let mut event: BTreeMap<&str, String> = BTreeMap::new();
    let mut flush = |event: &mut BTreeMap<&str, String>| {
        if event.get("Type").map(String::as_str) == Some("HttpApi") {
            let path = event.get("Path").expect("an HttpApi event has a Path");
            let method = event.get("Method").expect("an HttpApi event has a Method");
            routes.insert((method.to_ascii_uppercase(), path.clone()));
        }
        event.clear();
    };
    for line in events {
        if indent(line) == name_indent {
            flush(&mut event);
            continue;
        }
        for key in ["Type", "Path", "Method"] {
            if let Some(v) = line
                .trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
            {
                event.insert(key, v.trim().trim_matches(['"', '\'']).to_owned());
            }
        }
    }
    flush(&mut event);
    routes
}

/// `(status, code)` of every `Error::bad_request|not_found|conflict|unprocessable("code", …)`.
fn constructor_codes(file: &str, source: &str) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (constructor, status) in [
        ("bad_request", 400),
        ("not_found", 404),
        ("conflict", 409),
        ("unprocessable", 422),
    ] {
        let needle = format!("Error::{constructor}(");
        for (at, _) in source.match_indices(&needle) {
            let code = source[at + needle.len()..]
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(code, _)| code)
                .unwrap_or_else(|| {
                    panic!("{file}: an Error::{constructor}(…) whose code is not a string literal; this test reads codes as literals")
                });
            out.push((status, code.to_owned()));
        }
    }
    out
}

/// Codes fixed by the error module's own constructors that the charges routes reach.
fn fixed_codes() -> Vec<(u16, String)> {
    [
        Error::payload_too_large(MAX_REQUEST_BYTES),
        Error::unavailable("dynamodb", "down"),
        Error::bad_gateway("no answer", None),
        Error::internal("bug", None),
    ]
    .iter()
    .map(|e| (e.kind().status(), e.code().to_owned()))
    .collect()
}

fn all_codes() -> BTreeSet<(u16, String)> {
    let mut codes: BTreeSet<(u16, String)> = ERROR_SOURCES
        .iter()
        .flat_map(|(file, source)| constructor_codes(file, source))
        .collect();
    codes.extend(fixed_codes());
    codes
}

fn sample_charge(full: bool) -> Charge {
    Charge {
        id: ChargeId::generate(),
        invoice_id: "inv_123".into(),
        amount: Money::parse(1999, "eur").expect("a valid amount"),
        gateway: Gateway::Stripe,
        gateway_ref: full.then(|| "pi_123".into()),
        status: if full {
            ChargeStatus::Failed
        } else {
            ChargeStatus::Pending
        },
        captured: 0,
        refunded: 0,
        refund_reserved: 0,
        failure: full.then(|| Failure {
            code: "card_declined".into(),
            message: "Your card was declined.".into(),
        }),
        payment_method: "pm_card_visa".into(),
        customer: full.then(|| "cus_123".into()),
        capture: true,
        description: full.then(|| "Invoice 123".into()),
        metadata: if full {
            BTreeMap::from([("plan".into(), "pro".into())])
        } else {
            BTreeMap::new()
        },
        version: 1,
        created_at: 1_773_480_413,
        updated_at: 1_773_480_414,
    }
}

fn object_keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

fn parse(body: &Value) -> Result<NewCharge, Error> {
    NewCharge::parse(body.to_string().as_bytes()).map(|(c, _)| c)
}

// ---- the tests --------------------------------------------------------------------------------

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = doc();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");

    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty(), "the document uses components through $ref");
    let broken: Vec<&&str> = all.iter().filter(|r| pointee(&doc, r).is_none()).collect();
    assert!(
        broken.is_empty(),
        "$refs that resolve to nothing: {broken:?}"
    );

    let ids: Vec<&str> = operations(&doc)
        .iter()
        .map(|o| {
            o.op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{} has no operationId", o.name()))
        })
        .collect();
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operationIds repeat: {ids:?}");

    for (at, schema, value) in media_examples(&doc) {
        assert_shape(&doc, schema, value, &at);
    }
}

#[test]
fn the_documented_routes_are_exactly_the_template_routes_of_the_documented_functions() {
    let doc = doc();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|o| (o.method, o.path))
        .collect();
    let mut served = BTreeSet::new();
    for function in DOCUMENTED_FUNCTIONS {
        let routes = template_routes(function);
        assert!(
            !routes.is_empty(),
            "{function} has no HttpApi routes in template.yaml"
        );
        served.extend(routes);
    }
    assert_eq!(
        documented, served,
        "openapi.json paths vs template.yaml routes of {DOCUMENTED_FUNCTIONS:?}"
    );
}

#[test]
fn the_charge_schema_has_exactly_the_fields_of_the_charge_view_with_their_json_types() {
    let doc = doc();
    let charge = schema(&doc, "Charge");
    let properties = &charge["properties"];
    for full in [true, false] {
        let sample = view(&sample_charge(full));
        let keys = object_keys(&sample);
        assert_eq!(object_keys(properties), keys, "Charge.properties vs view()");
        assert_eq!(
            strings(&charge["required"]),
            keys,
            "Charge.required vs view()"
        );
        for (key, value) in sample.as_object().expect("the view is an object") {
            let property = &properties[key];
            if let Err(e) = shape(&doc, property, value, &format!("Charge.{key}")) {
                panic!("view() gives `{key}` = {value}, which the schema does not allow: {e}");
            }
        }
        assert_shape(&doc, charge, &sample, "view()");
    }

    // Every documented charge has exactly the view's fields, in lists too.
    let keys = object_keys(&view(&sample_charge(true)));
    let charge_ref = json!({"$ref": "#/components/schemas/Charge"});
    let list_ref = json!({"$ref": "#/components/schemas/ChargeList"});
    let mut seen = 0;
    for (at, schema, value) in media_examples(&doc) {
        let charges: Vec<&Value> = if *schema == charge_ref {
            vec![value]
        } else if *schema == list_ref {
            value["data"]
                .as_array()
                .expect("a list has data")
                .iter()
                .collect()
        } else {
            continue;
        };
        for c in charges {
            assert_eq!(object_keys(c), keys, "{at}");
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "the document shows charges in its examples ({seen} found)"
    );
}

#[test]
fn the_status_enum_is_every_charge_status() {
    let doc = doc();
    let status = resolve(&doc, &schema(&doc, "Charge")["properties"]["status"]);
    let documented = status["enum"].as_array().expect("status has an enum");
    let expected: BTreeSet<String> = ChargeStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(strings(&status["enum"]), expected);
    assert_eq!(
        documented.len(),
        expected.len(),
        "no status is listed twice"
    );
}

#[test]
fn the_create_request_schema_accepts_exactly_what_new_charge_parse_accepts() {
    let doc = doc();
    let request = schema(&doc, "CreateChargeRequest");
    assert_eq!(
        request["additionalProperties"],
        json!(false),
        "unknown fields are refused"
    );
    let properties = request["properties"].as_object().expect("properties");
    let required = strings(&request["required"]);

    // Every documented example parses, and the fullest one uses every property.
    let mut examples: Vec<Value> = request["examples"].as_array().cloned().unwrap_or_default();
    let create = operations(&doc)
        .into_iter()
        .find(|o| o.method == "POST" && o.path == "/charges")
        .expect("POST /charges is documented");
    for example in create.op["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .into_iter()
        .flat_map(Map::values)
    {
        examples.push(resolve(&doc, example)["value"].clone());
    }
    assert!(!examples.is_empty(), "the create request has examples");
    for example in &examples {
        if let Err(e) = parse(example) {
            panic!("the documented request {example} does not parse: {e}");
        }
    }
    let full = examples
        .iter()
        .max_by_key(|e| e.as_object().map_or(0, Map::len))
        .expect("an example")
        .clone();
    assert_eq!(
        object_keys(&full),
        properties.keys().cloned().collect(),
        "one example uses every property"
    );

    let with = |key: &str, value: Value| {
        let mut body = full.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = full.clone();
        body.as_object_mut().expect("an object").remove(key);
        body
    };

    // A property the schema does not list is refused as malformed: any name, and every field of a
    // charge that is not a request field.
    let mut strangers: BTreeSet<String> = object_keys(&view(&sample_charge(true)));
    strangers.retain(|k| !properties.contains_key(k));
    strangers.insert("not_in_the_schema".into());
    for key in &strangers {
        match parse(&with(key, json!("x"))) {
            Err(e) => assert_eq!(
                (e.kind().status(), e.code()),
                (400, "invalid_request"),
                "adding `{key}`"
            ),
            Ok(_) => panic!("`{key}` is not in the schema, yet the request parses with it"),
        }
    }

    // Exactly the required properties are needed.
    for key in properties.keys() {
        let result = parse(&without(key));
        assert_eq!(
            result.is_err(),
            required.contains(key),
            "removing `{key}`: {:?}",
            result.err()
        );
    }
    let capture_default = request["properties"]["capture"]["default"].as_bool();
    assert_eq!(
        parse(&without("capture")).map(|c| c.capture).ok(),
        capture_default,
        "`capture` defaults as documented"
    );

    // `null` is accepted exactly where the schema's type allows it.
    for (key, property) in properties {
        let allows_null = own_types(resolve(&doc, property)).is_some_and(|t| t.contains("null"));
        let result = parse(&with(key, Value::Null));
        assert_eq!(
            result.is_ok(),
            allows_null,
            "`{key}: null`: {:?}",
            result.err()
        );
    }

    // String length limits are the parser's.
    for (key, property) in properties {
        let property = resolve(&doc, property);
        if let Some(max) = property["maxLength"].as_u64() {
            let at_max = "a".repeat(max as usize);
            assert!(
                parse(&with(key, json!(at_max))).is_ok(),
                "`{key}` of {max} characters"
            );
            let over = "a".repeat(max as usize + 1);
            assert!(
                parse(&with(key, json!(over))).is_err(),
                "`{key}` of {} characters",
                max + 1
            );
        }
        if property["minLength"].as_u64() == Some(1) {
            assert!(parse(&with(key, json!(""))).is_err(), "an empty `{key}`");
        }
    }

    // The amount's bounds.
    let amount = &properties["amount"];
    assert_eq!(amount["minimum"].as_i64(), Some(1));
    assert_eq!(amount["maximum"].as_i64(), Some(Money::MAX_MINOR));
    for (n, ok) in [
        (0, false),
        (1, true),
        (Money::MAX_MINOR, true),
        (Money::MAX_MINOR + 1, false),
    ] {
        assert_eq!(parse(&with("amount", json!(n))).is_ok(), ok, "amount {n}");
    }

    // Exactly the documented gateways are accepted, of those the domain knows.
    let gateways = strings(&resolve(&doc, &properties["gateway"])["enum"]);
    for name in ["stripe", "adyen", "standard"] {
        assert!(Gateway::parse(name).is_some(), "the domain knows {name}");
        let result = parse(&with("gateway", json!(name)));
        assert_eq!(
            result.is_ok(),
            gateways.contains(name),
            "gateway {name}: {:?}",
            result.err()
        );
    }

    // Metadata limits are the parser's.
    let metadata = resolve(&doc, &properties["metadata"]);
    assert_eq!(
        metadata["maxProperties"].as_u64(),
        Some(MAX_METADATA_KEYS as u64)
    );
    assert_eq!(
        metadata["propertyNames"]["maxLength"].as_u64(),
        Some(MAX_METADATA_KEY_LEN as u64)
    );
    assert_eq!(
        metadata["additionalProperties"]["maxLength"].as_u64(),
        Some(MAX_METADATA_VALUE_LEN as u64)
    );
    let keys = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<Map<_, _>>()
            .into()
    };
    let one = |k: String, v: String| json!({ k: v });
    for (body, ok, what) in [
        (keys(MAX_METADATA_KEYS), true, "the most keys"),
        (keys(MAX_METADATA_KEYS + 1), false, "one key too many"),
        (
            one("k".repeat(MAX_METADATA_KEY_LEN), "v".into()),
            true,
            "the longest key",
        ),
        (
            one("k".repeat(MAX_METADATA_KEY_LEN + 1), "v".into()),
            false,
            "a key too long",
        ),
        (
            one("k".into(), "v".repeat(MAX_METADATA_VALUE_LEN)),
            true,
            "the longest value",
        ),
        (
            one("k".into(), "v".repeat(MAX_METADATA_VALUE_LEN + 1)),
            false,
            "a value too long",
        ),
        (one(String::new(), "v".into()), false, "an empty key"),
        (one("a[b]".into(), "v".into()), false, "a key with brackets"),
    ] {
        assert_eq!(
            parse(&with("metadata", body)).is_ok(),
            ok,
            "metadata: {what}"
        );
    }
}

#[test]
fn the_currency_enum_is_exactly_the_currencies_money_knows() {
    let doc = doc();
    let documented = strings(&schema(&doc, "CurrencyCode")["enum"]);
    // Every three-letter code, asked of the domain: the enum is complete and has nothing extra.
    let mut known = BTreeSet::new();
    for a in b'a'..=b'z' {
        for b in b'a'..=b'z' {
            for c in b'a'..=b'z' {
                let code = String::from_utf8(vec![a, b, c]).expect("ASCII");
                if let Ok(currency) = Currency::parse(&code) {
                    assert_eq!(currency.code(), code, "charges carry the lower-case code");
                    known.insert(code);
                }
            }
        }
    }
    assert_eq!(documented, known);

    // The request takes them in any case.
    let full = schema(&doc, "CreateChargeRequest")["examples"][0].clone();
    for code in &documented {
        for spelled in [code.clone(), code.to_ascii_uppercase()] {
            let mut body = full.clone();
            body["currency"] = json!(spelled);
            let parsed = parse(&body).unwrap_or_else(|e| panic!("currency {spelled}: {e}"));
            assert_eq!(parsed.amount.currency().code(), code);
        }
    }
}

#[test]
fn every_error_code_the_code_can_answer_with_is_documented_with_its_status() {
    let doc = doc();
    let error_code = schema(&doc, "ErrorCode");
    let documented = strings(&error_code["enum"]);
    let table = error_code["description"].as_str().unwrap_or_default();
    let codes = all_codes();
    assert!(
        codes.len() >= 20,
        "the scan finds the codes ({} found)",
        codes.len()
    );
    let operations = operations(&doc);
    for (status, code) in &codes {
        assert!(
            documented.contains(code),
            "`{code}` ({status}) is not in ErrorCode's enum"
        );
        assert!(
            table.contains(&format!("| `{code}` | {status} |")),
            "ErrorCode's table has no row for `{code}` with status {status}"
        );
        // The fallback route answers only paths API Gateway does not route to the function, so no
        // documented operation can return it; the table above documents it.
        if code == "route_not_found" {
            continue;
        }
        assert!(
            operations.iter().any(|o| o.documents(&doc, *status, code)),
            "no operation's {status} response names `{code}`"
        );
    }
    let produced: BTreeSet<String> = codes.iter().map(|(_, c)| c.clone()).collect();
    let stale: Vec<&String> = documented.difference(&produced).collect();
    assert!(
        stale.is_empty(),
        "documented codes that nothing produces: {stale:?}"
    );

    // An example error is one its response names.
    for op in &operations {
        for (status, response) in op.op["responses"].as_object().into_iter().flatten() {
            let response = resolve(&doc, response);
            let description = response["description"].as_str().unwrap_or_default();
            let examples = response.pointer("/content/application~1json/examples");
            for example in examples
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(_, e)| e)
            {
                if let Some(code) = resolve(&doc, example)["value"]["error"]["code"].as_str() {
                    assert!(
                        description.contains(&format!("`{code}`")),
                        "{} {status} shows `{code}` without describing it",
                        op.name()
                    );
                }
            }
        }
    }
}

#[test]
fn every_post_route_documents_the_idempotency_contract() {
    let doc = doc();
    for op in operations(&doc) {
        let key = op
            .parameters(&doc)
            .into_iter()
            .find(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
        if op.method != "POST" {
            assert!(key.is_none(), "{} takes no Idempotency-Key", op.name());
            continue;
        }
        let key = key.unwrap_or_else(|| panic!("{} documents no Idempotency-Key", op.name()));
        assert_eq!(key["required"], json!(true), "{}", op.name());
        assert_eq!(
            (
                key["schema"]["minLength"].as_u64(),
                key["schema"]["maxLength"].as_u64()
            ),
            (Some(1), Some(255))
        );
        for (status, code) in [
            (400, "idempotency_key_required"),
            (400, "invalid_idempotency_key"),
            (409, "request_in_progress"),
            (422, "idempotency_key_reused"),
        ] {
            assert!(
                op.documents(&doc, status, code),
                "{} {status} does not name `{code}`",
                op.name()
            );
        }
        let conflict = op.response(&doc, 409).expect("a 409");
        assert!(
            conflict["headers"].get("Retry-After").is_some(),
            "{} 409 has Retry-After",
            op.name()
        );
        let successes = op.op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(s, _)| s.starts_with('2'));
        let mut n = 0;
        for (status, response) in successes {
            let response = resolve(&doc, response);
            assert!(
                response["headers"].get("Idempotent-Replayed").is_some(),
                "{} {status} documents no Idempotent-Replayed header",
                op.name()
            );
            n += 1;
        }
        assert!(n > 0, "{} documents a success", op.name());
    }
}

/// The charges function with clients that are never reached: every request below is answered
/// before any I/O.
fn offline_charges() -> Charges {
    let aws = paybridge::adapters::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    Charges {
        store: Table::from_conf(&aws, "unused"),
        gateways: GatewayRouter {
            stripe: None,
            adyen: None,
        },
        queue: SqsWorkQueue::from_conf(&aws, "http://127.0.0.1:9/unused"),
        idempotency_ttl: Duration::from_secs(60),
    }
}

/// A request the handler refuses before any I/O, and how.
struct Refused {
    id: &'static str,
    key: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

#[tokio::test]
async fn the_answers_the_handler_gives_before_any_io_are_documented() {
    const ID: &str = "ch_0193a1b2c3d47e8f9a0b1c2d3e4f5a6b";
    let refused = |id, key, body: &[u8], status, code| Refused {
        id,
        key,
        body: body.to_vec(),
        status,
        code,
    };
    let doc = doc();
    let app = offline_charges();
    let error = schema(&doc, "Error");
    let too_big = vec![b'a'; MAX_REQUEST_BYTES + 1];
    let card = br#"{"invoice_id":"i","amount":1,"currency":"eur","gateway":"stripe","payment_method":"4242424242424242"}"#;
    let mut checked = 0;
    for op in operations(&doc) {
        let mut cases = vec![refused(ID, Some("k-1"), &too_big, 413, "payload_too_large")];
        match (op.method.as_str(), op.path.as_str()) {
            ("POST", path) => {
                cases.push(refused(ID, None, b"{}", 400, "idempotency_key_required"));
                cases.push(refused(
                    ID,
                    Some(" padded"),
                    b"{}",
                    400,
                    "invalid_idempotency_key",
                ));
                if path.contains("{id}") {
                    cases.push(refused(
                        "ch_nope",
                        Some("k-1"),
                        b"",
                        404,
                        "charge_not_found",
                    ));
                }
                if !path.ends_with("/cancel") {
                    cases.push(refused(ID, Some("k-1"), b"{", 400, "invalid_json"));
                    cases.push(refused(
                        ID,
                        Some("k-1"),
                        br#"{"amount":1,"x":1}"#,
                        400,
                        "invalid_request",
                    ));
                }
                if path == "/charges" {
                    cases.push(refused(ID, Some("k-1"), card, 422, "card_data_refused"));
                }
            }
            ("GET", "/charges") => cases.push(refused(ID, None, b"", 400, "invoice_id_required")),
            ("GET", _) => cases.push(refused("ch_nope", None, b"", 404, "charge_not_found")),
            _ => {}
        }
        for case in cases {
            let path = op.path.replace("{id}", case.id);
            let params: Vec<(&str, &str)> = if op.path.contains("{id}") {
                vec![("id", case.id)]
            } else {
                vec![]
            };
            let headers: Vec<(&str, &str)> = case
                .key
                .map(|k| ("Idempotency-Key", k))
                .into_iter()
                .collect();
            let route_key = format!("{} {}", op.method, op.path);
            let req = api_request_with_query(
                &route_key,
                &path,
                &params,
                &[],
                &headers,
                &case.body,
                false,
            );
            let resp = handle(&app, req).await.expect("the handler never fails");
            let text = String::from_utf8_lossy(resp.body().as_ref()).into_owned();
            let (status, code) = (case.status, case.code);
            assert_eq!(
                resp.status().as_u16(),
                status,
                "{} ({code}): {text}",
                op.name()
            );
            let body: Value = serde_json::from_str(&text).expect("an error body is JSON");
            assert_eq!(body["error"]["code"], json!(code), "{}", op.name());
            assert_shape(&doc, error, &body, &format!("{} {status}", op.name()));
            assert!(
                op.documents(&doc, status, code),
                "{} answers {status} `{code}`, which its responses do not document",
                op.name()
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} answers checked");

    // The limit the 413 documents is the handler's.
    let too_large = doc["components"]["responses"]["PayloadTooLarge"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        too_large.contains(&MAX_REQUEST_BYTES.to_string()),
        "{too_large}"
    );
}
