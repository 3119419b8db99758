//! Card-number detection and masking (PCI DSS: card numbers never enter paybridge).
//!
//! A run of 13–19 digits — optionally grouped by single spaces or dashes, as people type them —
//! that passes the Luhn check is treated as a primary account number. [`mask_pans`] replaces
//! all but the last four digits with `*` before a payload is stored or logged;
//! [`contains_pan`] lets a request that carries one be refused outright.
//!
//! Two exceptions keep identifiers intact (a masked id would cut a webhook off from its charge):
//! digits glued to letters or `_` (`ch_0192…`, `pi_3Mtw…`) are part of an identifier, and in
//! stored payloads the values of identifier keys (`id`, `…_id`, `…Reference`, such as Adyen's
//! numeric `pspReference`) are left as they are.

/// Whether `digits` (ASCII digits only) passes the Luhn check.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Byte ranges (start, end) of card-number candidates in `text`, with their digits.
fn pan_spans(text: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_digit() || (i > 0 && text[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // Collect a run of digits, allowing single separators between digit groups.
        let start = i;
        let mut end = i;
        let mut digits = Vec::with_capacity(19);
        let mut j = i;
        while j < text.len() && digits.len() <= 19 {
            let c = text[j];
            if c.is_ascii_digit() {
                digits.push(c);
                j += 1;
                end = j;
            } else if (c == b' ' || c == b'-')
                && j + 1 < text.len()
                && text[j + 1].is_ascii_digit()
                && !digits.is_empty()
            {
                j += 1;
            } else {
                break;
            }
        }
        // A longer digit run is something else (an amount in minor units, a timestamp pair…).
        // Digits glued to letters or `_` are part of an identifier (`ch_0192…`, `pi_3Mtw…`),
        // never a card number someone typed: masking them would corrupt the id.
        let glued = |k: Option<&u8>| k.is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
        let in_identifier =
            glued(start.checked_sub(1).and_then(|k| text.get(k))) || glued(text.get(end));
        if (13..=19).contains(&digits.len()) && !in_identifier && luhn_valid(&digits) {
            spans.push((start, end));
        }
        i = end.max(i + 1);
    }
    spans
}

/// Whether `text` contains something that looks like a card number.
pub fn contains_pan(text: &str) -> bool {
    !pan_spans(text.as_bytes()).is_empty()
}

/// `text` with every card number masked to its last four digits (`************4242`).
/// Separators inside the number are kept so offsets and shapes stay recognisable.
pub fn mask_pans(text: &str) -> String {
    let spans = pan_spans(text.as_bytes());
    if spans.is_empty() {
        return text.to_owned();
    }
    let mut out = text.as_bytes().to_vec();
    for (start, end) in spans {
        let digit_positions: Vec<usize> =
            (start..end).filter(|&k| out[k].is_ascii_digit()).collect();
        let keep_from = digit_positions.len().saturating_sub(4);
        for &k in &digit_positions[..keep_from] {
            out[k] = b'*';
        }
    }
    // Only ASCII digits were replaced by an ASCII byte, so the text is still UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// Keys whose values are gateway or paybridge identifiers. An Adyen `pspReference` is a
/// 16-digit number that can pass the Luhn check; masking it would lose the only link between a
/// webhook and its payment, so stored payloads keep identifier values as they are.
fn is_identifier_key(key: &str) -> bool {
    key == "id"
        || key.ends_with("_id")
        || key.ends_with("Id")
        || key.ends_with("Reference")
        || key.ends_with("_reference")
}

/// Masks card numbers inside a JSON document in place: in string values, in keys, and in
/// numbers (a 13–19 digit Luhn-valid number becomes a masked string) — except the values of
/// identifier keys (see `is_identifier_key`). The result stays valid JSON.
pub fn mask_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if contains_pan(s) {
                *s = mask_pans(s);
            }
        }
        Value::Number(n) => {
            let text = n.to_string();
            if contains_pan(&text) {
                *value = Value::String(mask_pans(&text));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::Object(map) => {
            if map.keys().any(|k| contains_pan(k)) {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(mask_pans(&k), v);
                }
            }
            for (k, v) in map.iter_mut() {
                if !(is_identifier_key(k) && (v.is_string() || v.is_number())) {
                    mask_json(v);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Whether a JSON document carries a card number anywhere (keys, strings or numbers).
pub fn json_contains_pan(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => contains_pan(s),
        Value::Number(n) => contains_pan(&n.to_string()),
        Value::Array(items) => items.iter().any(json_contains_pan),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| contains_pan(k) || json_contains_pan(v)),
        Value::Null | Value::Bool(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_cards_are_found_and_masked() {
        assert_eq!(
            mask_pans(r#"{"number":"4242424242424242"}"#),
            r#"{"number":"************4242"}"#
        );
        assert_eq!(
            mask_pans("card 4000 0566 5566 5556 ok"),
            "card **** **** **** 5556 ok"
        );
        assert_eq!(
            mask_pans("amex 3782-822463-10005."),
            "amex ****-******-*0005."
        );
        assert!(contains_pan("pan=5555555555554444&x=1"));
    }

    #[test]
    fn other_numbers_are_left_alone() {
        // Not Luhn-valid, too short, too long, or an ordinary amount/timestamp.
        for s in [
            "4242424242424241",
            "424242424242",
            "42424242424242424242",
            r#"{"amount":1999,"created":1700000000}"#,
            "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        ] {
            assert_eq!(mask_pans(s), s);
            assert!(!contains_pan(s), "{s}");
        }
    }

    #[test]
    fn identifiers_with_long_digit_runs_are_not_card_numbers() {
        // Luhn-valid 16-digit runs inside ids (UUID hex can produce them).
        for id in [
            "ch_0192424242424242424aaaabbbbcccc",
            "pi_4242424242424242",
            "4242424242424242_x",
        ] {
            assert!(!contains_pan(id), "{id}");
            assert_eq!(mask_pans(id), id);
        }
        // An Adyen pspReference that happens to pass the Luhn check is kept; the same number in
        // free text is masked.
        let mut v: serde_json::Value = serde_json::json!({
            "pspReference": "4242424242424242", "originalReference": "5555555555554444",
            "merchantReference": "ch_01", "metadata": {"paybridge_charge_id": "4111111111111111"},
            "reason": "card 4242424242424242"
        });
        mask_json(&mut v);
        assert_eq!(v["pspReference"], "4242424242424242");
        assert_eq!(v["originalReference"], "5555555555554444");
        assert_eq!(v["metadata"]["paybridge_charge_id"], "4111111111111111");
        assert_eq!(v["reason"], "card ************4242");
    }

    #[test]
    fn json_stays_valid_json_after_masking() {
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"a":"4242 4242 4242 4242","n":4111111111111111,"ok":1999,"l":[{"5555555555554444":true}]}"#,
        )
        .unwrap();
        assert!(json_contains_pan(&v));
        mask_json(&mut v);
        assert!(!json_contains_pan(&v));
        assert_eq!(v["a"], "**** **** **** 4242");
        assert_eq!(v["n"], "************1111");
        assert_eq!(v["ok"], 1999);
        assert_eq!(v["l"][0]["************4444"], true);
    }

    proptest! {
        #[test]
        fn masking_never_leaves_a_card_number_behind(s in "[0-9 a-z\\-\"{}:,]{0,200}") {
            let masked = mask_pans(&s);
            prop_assert!(!contains_pan(&masked));
            prop_assert_eq!(masked.len(), s.len());
        }
    }
}
