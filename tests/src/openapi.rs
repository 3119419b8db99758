//! openapi.json, and the reading of it the tests share: operations, their responses and
//! examples, `$ref`s, and checking a value against a schema of the document.
//!
//! Schemas are checked by the `jsonschema` crate as JSON Schema draft 2020-12 (OpenAPI 3.1's
//! dialect), with one rule of our own on top: see [`closed`].

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const OPENAPI: &str = include_str!("../../openapi.json");

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The repository's openapi.json.
pub fn document() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(OPENAPI).expect("openapi.json is valid JSON"))
}

/// The value a local `$ref` (`#/components/…`) points at.
pub fn pointee<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// `value`, with `$ref`s followed.
pub fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
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

/// Every `$ref` in the document.
pub fn refs(value: &Value) -> Vec<&str> {
    fn walk<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    out.push(r);
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// `components.schemas.{name}`.
pub fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("components.schemas.{name} is missing"))
}

/// One operation of the document.
pub struct Operation<'a> {
    /// Upper case: `POST`.
    pub method: String,
    pub path: String,
    pub op: &'a Value,
}

impl Operation<'_> {
    /// `POST /charges`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The response documented for `status`, `$ref` followed.
    pub fn response<'d>(&'d self, doc: &'d Value, status: u16) -> Option<&'d Value> {
        self.op
            .pointer(&format!("/responses/{status}"))
            .map(|r| resolve(doc, r))
    }

    /// The operation's parameters, `$ref`s followed.
    pub fn parameters<'d>(&'d self, doc: &'d Value) -> Vec<&'d Value> {
        self.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| resolve(doc, p))
            .collect()
    }

    /// Whether the response for `status` names `code` in its description.
    pub fn documents(&self, doc: &Value, status: u16, code: &str) -> bool {
        self.response(doc, status)
            .and_then(|r| r["description"].as_str())
            .is_some_and(|d| d.contains(&format!("`{code}`")))
    }
}

/// Every operation of every path, in the document's order of paths.
pub fn operations(doc: &Value) -> Vec<Operation<'_>> {
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

/// Every example of every request and response body: (where, schema, value).
pub fn media_examples(doc: &Value) -> Vec<(String, &Value, &Value)> {
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

/// The JSON types a schema's own `type` allows (`None`: it does not say).
pub fn own_types(schema: &Value) -> Option<BTreeSet<String>> {
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

/// Whether a schema allows `null`: in its own `type`, or as a branch of its `anyOf`/`oneOf`.
pub fn allows_null(doc: &Value, schema: &Value) -> bool {
    let schema = resolve(doc, schema);
    own_types(schema).is_some_and(|t| t.contains("null"))
        || ["anyOf", "oneOf"].iter().any(|key| {
            schema[*key]
                .as_array()
                .into_iter()
                .flatten()
                .any(|b| allows_null(doc, b))
        })
}

/// Checks `value` against `schema`, a schema of `doc` (or a `$ref` into it), as JSON Schema
/// draft 2020-12 with [`closed`] applied to it and to every schema it refers to. No schema at
/// all (`null`, as a media type without `schema` reads) allows anything. The error names each
/// failure by `at` and the failing part's JSON pointer.
pub fn shape(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if schema.is_null() {
        return Ok(());
    }
    let validator = validator(doc, schema).unwrap_or_else(|e| panic!("{at}: a bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{at}{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// [`shape`], panicking with the value.
pub fn assert_shape(doc: &Value, schema: &Value, value: &Value, at: &str) {
    if let Err(e) = shape(doc, schema, value, at) {
        panic!("{e}\nvalue: {value:#}");
    }
}

/// A validator for `schema`, with the document's (closed) components beside it so that its
/// `#/components/…` references resolve within it — nothing is fetched.
fn validator(
    doc: &Value,
    schema: &Value,
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    let mut root = Map::new();
    root.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    root.insert("components".into(), closed_components(doc));
    root.insert("allOf".into(), Value::Array(vec![closed(schema.clone())]));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&Value::Object(root))
}

/// The document's components, with every schema [`closed`].
fn closed_components(doc: &Value) -> Value {
    let mut components = doc["components"].clone();
    if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
        for s in schemas.values_mut() {
            *s = closed(std::mem::take(s));
        }
    }
    components
}

/// Our rule on top of JSON Schema: an object key that is not in `properties` is accepted only
/// where `additionalProperties` gives it a schema, so a field missing from the document cannot
/// hide in a sample. That is, a schema that has `properties` or `additionalProperties`, and whose
/// `additionalProperties` is not a schema object, gets `"additionalProperties": false` — here
/// and in every subschema (`properties`, `items`, `anyOf`, `oneOf`, `allOf`, …). A schema with
/// neither says nothing about keys and is left alone.
pub fn closed(mut schema: Value) -> Value {
    let Some(map) = schema.as_object_mut() else {
        return schema;
    };
    let open = map
        .get("additionalProperties")
        .is_none_or(|a| !a.is_object());
    if (map.contains_key("properties") || map.contains_key("additionalProperties")) && open {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for key in [
        "properties",
        "patternProperties",
        "$defs",
        "dependentSchemas",
    ] {
        if let Some(Value::Object(subs)) = map.get_mut(key) {
            for s in subs.values_mut() {
                *s = closed(std::mem::take(s));
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = map.get_mut(key) {
            for s in subs.iter_mut() {
                *s = closed(std::mem::take(s));
            }
        }
    }
    for key in [
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
    ] {
        if let Some(s) = map.get_mut(key) {
            *s = closed(std::mem::take(s));
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({"components": {"schemas": {
            "Thing": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "integer", "minimum": 1},
                "inner": {"type": "object", "properties": {"x": {"type": "string"}}},
                "tags": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                "loose": {"type": "object"},
            }},
        }}})
    }

    fn check(value: Value) -> Result<(), String> {
        let doc = doc();
        shape(
            &doc,
            &json!({"$ref": "#/components/schemas/Thing"}),
            &value,
            "v",
        )
    }

    #[test]
    fn refs_into_the_components_resolve_and_keywords_are_checked() {
        assert!(check(json!({"a": 1})).is_ok());
        assert!(check(json!({"a": 0})).is_err(), "minimum");
        assert!(check(json!({})).is_err(), "required");
        assert!(
            check(json!({"a": 1, "tags": {"t": "long"}})).is_err(),
            "maxLength"
        );
    }

    #[test]
    fn a_key_no_schema_describes_is_refused_where_the_schema_lists_properties() {
        assert!(check(json!({"a": 1, "b": 2})).is_err());
        assert!(check(json!({"a": 1, "inner": {"y": "?"}})).is_err());
        assert!(check(json!({"a": 1, "tags": {"any": "v"}})).is_ok());
        assert!(check(json!({"a": 1, "loose": {"any": 1}})).is_ok());
    }
}
