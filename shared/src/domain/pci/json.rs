//! Card numbers in JSON documents: found in, or masked out of, every key, string and number.
//!
//! Numbers are checked as serde_json writes them back (what is stored is that text): a 13–19
//! digit Luhn-valid number becomes a masked string. Strings are checked as decoded, so
//! `"\u0034111…"` is a card number too; a string holding control characters (written as
//! `\u00XX`, whose digits could join its own) is also checked as written.
//!
//! **Identifier exemptions** ([`mask_json_except`]): a gateway whose documented payload carries
//! an identifier paybridge must keep exact to find its records — Adyen's `pspReference`, 16
//! characters that may be 16 digits and pass the Luhn check by chance — lists it as an
//! [`Identifier`]: a JSON path from the stored document's root, and the shape the value must have.
//! A value at that path is kept only if it has that shape; anything else there, and the same value
//! anywhere else, is masked as usual. There is no exemption by key name, and none at all for
//! requests ([`json_contains_pan`]).

use serde_json::Value;

use super::{contains_pan, mask_pans};

/// One step of an [`Identifier`]'s path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The member with this key of an object.
    Key(&'static str),
    /// Every element of an array.
    Each,
}

/// A documented identifier field of a gateway's payload that masking leaves as it is.
#[derive(Debug, Clone, Copy)]
pub struct Identifier {
    /// From the root of the stored document.
    pub path: &'static [Step],
    /// The value is kept only if this holds (e.g. "16 ASCII letters or digits").
    pub shape: fn(&str) -> bool,
}

impl Identifier {
    /// The path as the docs write it: `notificationItems[].NotificationRequestItem.pspReference`.
    pub fn path_text(&self) -> String {
        let mut out = String::new();
        for step in self.path {
            match step {
                Step::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Step::Each => out.push_str("[]"),
            }
        }
        out
    }
}

/// Whether a JSON document carries a card number anywhere (keys, strings or numbers), with no
/// exemption: the check of billing-facing requests.
pub fn json_contains_pan(value: &Value) -> bool {
    match value {
        Value::String(s) => string_contains_pan(s),
        Value::Number(n) => number_contains_pan(n),
        Value::Array(items) => items.iter().any(json_contains_pan),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| string_contains_pan(k) || json_contains_pan(v)),
        Value::Null | Value::Bool(_) => false,
    }
}

/// Masks every card number in a JSON document, in place, with no exemption. The result stays
/// valid JSON.
pub fn mask_json(value: &mut Value) {
    mask_json_except(value, &[]);
}

/// Masks every card number in a JSON document, in place, except the values of `identifiers`
/// that have their shape. The result stays valid JSON.
pub fn mask_json_except(value: &mut Value, identifiers: &[Identifier]) {
    let at: Vec<(&Identifier, usize)> = identifiers.iter().map(|i| (i, 0)).collect();
    walk(value, &at);
}

/// `at`: the identifiers whose path matches the way to `value` so far, with how many steps did.
fn walk(value: &mut Value, at: &[(&Identifier, usize)]) {
    match value {
        Value::String(s) => {
            let exempt = at
                .iter()
                .any(|(id, done)| *done == id.path.len() && (id.shape)(s));
            if !exempt && let Some(masked) = masked_string(s) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            if number_contains_pan(n) {
                *value = Value::String(mask_pans(&n.to_string()));
            }
        }
        Value::Array(items) => {
            let next = advance(at, |s| matches!(s, Step::Each));
            for item in items {
                walk(item, &next);
            }
        }
        Value::Object(map) => {
            if map.keys().any(|k| string_contains_pan(k)) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    let key = masked_string(&k).unwrap_or(k);
                    map.insert(key, v);
                }
            }
            for (k, v) in map.iter_mut() {
                let next = advance(at, |s| matches!(s, Step::Key(key) if *key == k.as_str()));
                walk(v, &next);
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// The identifiers still matching after one more step that `step_matches`.
fn advance<'a>(
    at: &[(&'a Identifier, usize)],
    step_matches: impl Fn(&Step) -> bool,
) -> Vec<(&'a Identifier, usize)> {
    at.iter()
        .filter(|(id, done)| id.path.get(*done).is_some_and(&step_matches))
        .map(|(id, done)| (*id, done + 1))
        .collect()
}

/// Whether a number, as serde_json writes it, holds a card number. An integer of at most 12
/// digits cannot (most numbers of a payload), so only longer ones and floats are written out.
fn number_contains_pan(n: &serde_json::Number) -> bool {
    const SHORT: u64 = 1_000_000_000_000;
    let short = n
        .as_u64()
        .map(|u| u < SHORT)
        .or_else(|| n.as_i64().map(|i| i.unsigned_abs() < SHORT));
    !short.unwrap_or(false) && contains_pan(&n.to_string())
}

/// Whether a string holds a card number, decoded or as JSON writes it.
fn string_contains_pan(s: &str) -> bool {
    if has_control(s) {
        contains_pan(s) || contains_pan(&Value::from(s).to_string())
    } else {
        // Fewer than 13 bytes cannot hold 13 digits (most keys and values of a payload).
        s.len() >= super::MIN_PAN_DIGITS && contains_pan(s)
    }
}

fn has_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20)
}

/// The string masked, or `None` if it holds no card number. Control characters of a string whose
/// written form would hold one become U+FFFD, so the written form holds only its own digits.
fn masked_string(s: &str) -> Option<String> {
    if !string_contains_pan(s) {
        return None;
    }
    let plain: String = if has_control(s) {
        s.chars()
            .map(|c| if (c as u32) < 0x20 { '\u{fffd}' } else { c })
            .collect()
    } else {
        s.to_owned()
    };
    Some(mask_pans(&plain))
}
