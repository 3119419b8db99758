//! template.yaml, read once into CloudFormation's JSON shape, and the lookups the tests share.
//!
//! The YAML is parsed by `serde_norway`; its short-form tags become the long form CloudFormation
//! itself uses: `!Ref X` → `{"Ref": "X"}`, `!GetAtt X.Y` → `{"Fn::GetAtt": "X.Y"}` (kept as
//! written, not split), `!Sub s` → `{"Fn::Sub": "s"}`, any other `!Tag v` → `{"Fn::Tag": v}`.
//! Scalars keep their YAML types (`300` is a number, `false` a boolean); [`text`] reads any of
//! them as written.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};

const TEMPLATE: &str = include_str!("../../template.yaml");

/// The pseudo parameters' example values, for reading a `!Sub` the way one stack would see it.
const PSEUDO_PARAMETERS: &[(&str, &str)] = &[
    ("AWS::Region", "eu-west-1"),
    ("AWS::StackName", "paybridge"),
    ("AWS::AccountId", "123456789012"),
    ("AWS::URLSuffix", "amazonaws.com"),
    ("AWS::Partition", "aws"),
];

/// Parses a CloudFormation YAML template into its JSON shape (see the module doc).
pub fn parse(source: &str) -> Result<Value, serde_norway::Error> {
    let yaml: serde_norway::Value = serde_norway::from_str(source)?;
    Ok(to_json(yaml))
}

fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (text(&to_json(k)), to_json(v)))
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let key = match name {
                "Ref" | "Condition" => name.to_owned(),
                other => format!("Fn::{other}"),
            };
            Value::Object(Map::from_iter([(key, to_json(tagged.value))]))
        }
    }
}

/// The repository's template.yaml.
pub fn template() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| {
        parse(TEMPLATE).unwrap_or_else(|e| panic!("template.yaml does not parse: {e}"))
    })
}

pub fn resources() -> &'static Map<String, Value> {
    template()["Resources"].as_object().expect("Resources")
}

pub fn parameters() -> &'static Map<String, Value> {
    template()["Parameters"].as_object().expect("Parameters")
}

/// The names of the resources of type `kind`, in the template's order of names.
pub fn resource_names(kind: &str) -> Vec<String> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(name, _)| name.clone())
        .collect()
}

/// `(name, Properties)` of every alarm.
pub fn alarms() -> Vec<(String, Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, r)| (name.clone(), r["Properties"].clone()))
        .collect()
}

/// `(METHOD, path)` of every `HttpApi` event of the function resource `function`.
pub fn http_api_routes(function: &str) -> BTreeSet<(String, String)> {
    let resource = resources()
        .get(function)
        .unwrap_or_else(|| panic!("template.yaml has no resource {function}"));
    let events = resource["Properties"]["Events"]
        .as_object()
        .unwrap_or_else(|| panic!("{function} has no Events"));
    events
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            let props = &e["Properties"];
            let path = props.get("Path").expect("an HttpApi event has a Path");
            let method = props.get("Method").expect("an HttpApi event has a Method");
            (text(method).to_ascii_uppercase(), text(path))
        })
        .collect()
}

/// A scalar as text: strings as they are, numbers and booleans as YAML wrote them, `!Ref X` /
/// `!GetAtt X.Y` / `!Sub s` in their short form.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.len() == 1 => {
            let (tag, inner) = o.iter().next().expect("one entry");
            let tag = match tag.as_str() {
                "Ref" => "!Ref",
                "Fn::GetAtt" => "!GetAtt",
                "Fn::Sub" => "!Sub",
                other => other,
            };
            format!("{tag} {}", text(inner))
        }
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A number, literal or a `!Ref` to a parameter (its default).
pub fn number(v: &Value, what: &str) -> f64 {
    number_and_max(v, what).0
}

/// A number and the largest value it can take (a parameter's MaxValue, or itself).
pub fn number_and_max(v: &Value, what: &str) -> (f64, f64) {
    let parse = |v: &Value| -> f64 {
        text(v)
            .parse()
            .unwrap_or_else(|_| panic!("{what}: {v} is not a number"))
    };
    match v.get("Ref").and_then(Value::as_str) {
        Some(parameter) => {
            let p = parameters()
                .get(parameter)
                .unwrap_or_else(|| panic!("{what}: !Ref {parameter} is not a parameter"));
            let default = parse(&p["Default"]);
            let max = p.get("MaxValue").map(parse).unwrap_or(f64::INFINITY);
            (default, max)
        }
        None => {
            let n = parse(v);
            (n, n)
        }
    }
}

/// The names a `!Sub` string refers to (`${Name}`, `${Name.Attr}`; not `${!Literal}`).
pub fn sub_references(sub: &str) -> Vec<String> {
    sub.split("${")
        .skip(1)
        .filter(|part| !part.starts_with('!'))
        .filter_map(|part| part.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// A `!Sub` string with its `${…}` substituted: pseudo parameters by example values, parameters
/// by their defaults, resources by their own names (`${WorkQueue.QueueName}` →
/// `WorkQueue.QueueName`), so a test can see what it refers to. A name that is nothing in the
/// template panics.
pub fn substituted(sub: &str, what: &str) -> String {
    let mut out = String::new();
    let mut rest = sub;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let (name, after) = rest[at + 2..]
            .split_once('}')
            .unwrap_or_else(|| panic!("an unterminated ${{ in {what}"));
        let pseudo = PSEUDO_PARAMETERS.iter().find(|(p, _)| *p == name);
        let value = match pseudo {
            Some((_, value)) => (*value).to_owned(),
            None if parameters().contains_key(name) => text(&parameters()[name]["Default"]),
            None => {
                let resource = name.split('.').next().unwrap_or_default();
                assert!(
                    resources().contains_key(resource),
                    "{what} refers to ${{{name}}}, which is nothing in the template"
                );
                name.to_owned()
            }
        };
        out.push_str(&value);
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_form_tags_become_their_long_form() {
        let parsed = parse(
            "A: !Ref Thing\nB: !GetAtt Queue.Arn\nC: !Sub '${AWS::Region}-x'\n\
             D: !If [IsProd, !Ref P, !Ref 'AWS::NoValue']\nE: !Equals [!Ref Env, prod]\nF: 300\n",
        )
        .expect("parses");
        assert_eq!(
            parsed,
            json!({
                "A": {"Ref": "Thing"},
                "B": {"Fn::GetAtt": "Queue.Arn"},
                "C": {"Fn::Sub": "${AWS::Region}-x"},
                "D": {"Fn::If": ["IsProd", {"Ref": "P"}, {"Ref": "AWS::NoValue"}]},
                "E": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
                "F": 300,
            })
        );
    }

    #[test]
    fn a_key_given_twice_is_an_error() {
        assert!(parse("A: 1\nA: 2\n").is_err());
    }
}
