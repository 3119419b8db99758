//! Card-number detection and masking (PCI DSS: card numbers never enter paybridge).
//!
//! **What counts as a card number (PAN).** Take every *digit sequence* of a text: digits joined
//! by nothing or by runs of spaces, dashes or dots (`4111 1111-1111.1111`, `4111 - 1111`), and
//! ended by anything else — a letter, `_`, `/`, `:`, a quote, the end. Every window of 13–19
//! consecutive digits of a sequence, *at any position*, that passes the Luhn check is a card
//! number: so is a PAN followed by its CVV (`4111 1111 1111 1111 123`), preceded by other digits,
//! or glued to letters (`pan4111111111111111`). One refinement, from ISO/IEC 7812's issuer
//! ranges, keeps the most common digit strings that are not PANs out: a window that starts with
//! `0` is never a PAN (no card scheme issues numbers from major industry identifier 0), and one
//! that starts with `1` is one only at 15 digits (UATP, the one scheme under identifier 1). That
//! lets every unix timestamp in seconds, ms, µs or ns until 2033 (they start with `1`) through
//! unchanged — 1 in 10 of the 13-digit ms timestamps would otherwise pass Luhn. No card of a
//! scheme in use is lost by it: the window that starts at a real PAN's first digit starts with its
//! issuer's digit, whatever stands before it.
//!
//! **What is done with one.** Billing-facing requests that carry one anywhere are refused
//! ([`contains_pan`], [`json_contains_pan`]), with no exemption. Stored and logged text is masked
//! ([`mask_pans`], [`json::mask_json`]): every digit of a sequence that holds a card number is
//! replaced by `*`, except four: the last four of the sequence when it is one card number, else
//! the last four of its earliest-ending card-number window — so `4111 1111 1111 1111 123` becomes
//! `**** **** **** 1111 ***` (the CVV goes too). Separators stay,
//! so shapes and offsets stay recognisable, and the result never holds a card number again (a kept
//! four are fenced by `*` or by the sequence's end). Gateway payloads may exempt a few documented
//! identifier fields, by JSON path and shape: see [`json`].
//!
//! Cost: one pass over the bytes; each digit of a sequence of 13 or more is the end of at most 7
//! windows, each checked in O(1) with running Luhn sums mod 10 (no allocation).

pub mod json;

pub use json::{Identifier, Step, json_contains_pan, mask_json, mask_json_except};

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

/// The shortest and longest card numbers (ISO/IEC 7812: up to 19 digits; 13 is the shortest
/// issued, Visa's old numbers).
pub const MIN_PAN_DIGITS: usize = 13;
pub const MAX_PAN_DIGITS: usize = 19;

/// Whether a byte may stand between the digits of a card number (in runs of any length).
fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// Whether a Luhn-valid window of `len` digits starting with `first` can be a card number under
/// the issuer ranges (see the module doc): never from major industry identifier 0, and from 1
/// only at UATP's 15 digits.
fn issuable(first: u8, len: usize) -> bool {
    match first {
        0 => false,
        1 => len == 15,
        _ => true,
    }
}

/// A digit doubled as Luhn doubles every second digit from the right, reduced to one digit.
const DOUBLED: [u8; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/// A digit sequence that holds at least one card number: its bytes `start..end` (digits and the
/// separators between them) and the digit indices `keep..keep + 4` masking leaves as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
    keep: usize,
}

/// The index of the first ASCII digit of `text` at or after `i` (or `text.len()`), eight bytes
/// at a time: most of a payload is not digits.
fn next_digit(text: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 128;
    while i + 8 <= text.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&text[i..i + 8]);
        let x = u64::from_le_bytes(word);
        // "Has a byte between '0' - 1 and '9' + 1" (Bit Twiddling Hacks, hasbetween).
        let low = x & (ONES * 127);
        let between = (ONES * (127 + 0x3A)).wrapping_sub(low)
            & !x
            & low.wrapping_add(ONES * (127 - 0x2F))
            & HIGH;
        if between != 0 {
            return i + (between.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < text.len() && !text[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The end of the digit sequence starting at the digit `start`, how many digits it has, and
/// where scanning goes on (after separators that end it).
fn sequence_extent(text: &[u8], start: usize) -> (usize, usize, usize) {
    let n = text.len();
    let (mut j, mut end, mut count) = (start, start, 0);
    loop {
        while j < n && text[j].is_ascii_digit() {
            j += 1;
            count += 1;
        }
        end = end.max(j);
        let mut k = j;
        while k < n && is_separator(text[k]) {
            k += 1;
        }
        if k > j && k < n && text[k].is_ascii_digit() {
            j = k;
        } else {
            return (end, count, k);
        }
    }
}

/// Calls `found` for each digit sequence of `text` that holds a card number, in order, until it
/// returns `false`.
fn scan(text: &[u8], mut found: impl FnMut(Found) -> bool) {
    let mut i = next_digit(text, 0);
    while i < text.len() {
        let start = i;
        let (end, digits, resume) = sequence_extent(text, start);
        i = next_digit(text, resume);
        if digits < MIN_PAN_DIGITS {
            continue;
        }
        if let Some(keep) = card_number_in(&text[start..end])
            && !found(Found { start, end, keep })
        {
            return;
        }
    }
}

/// Whether the digit sequence `seq` (digits and the separators between them) holds a card
/// number, and which four digits masking keeps: the last four of the whole sequence when it is
/// one card number (a PAN on its own), else those of the earliest-ending card-number window.
///
/// For each parity q, `sum[q]` is the running sum (mod 10) of the digits so far with every digit
/// whose index has parity ≠ q doubled; the Luhn sum of the window [s, e) is then `sum[(e-1)%2]` at
/// e minus the same at s. The last 32 prefix sums and digits are kept in rings (a window reaches
/// back at most 19), so each digit costs at most 7 comparisons and nothing is allocated.
fn card_number_in(seq: &[u8]) -> Option<usize> {
    let mut count = 0usize;
    let mut sum = [0u8; 2];
    let mut prefix = [[0u8; 32]; 2];
    let mut digit_at = [0u8; 32];
    let mut hit: Option<usize> = None;
    for &b in seq {
        if !b.is_ascii_digit() {
            continue;
        }
        let d = b - b'0';
        let (same, other) = if count.is_multiple_of(2) {
            (0, 1)
        } else {
            (1, 0)
        };
        sum[same] += d;
        sum[other] += DOUBLED[d as usize];
        for s in &mut sum {
            if *s >= 10 {
                *s -= 10;
            }
        }
        digit_at[count & 31] = d;
        count += 1;
        prefix[0][count & 31] = sum[0];
        prefix[1][count & 31] = sum[1];
        if hit.is_none() && count >= MIN_PAN_DIGITS {
            let q = (count - 1) % 2;
            let longest = count.min(MAX_PAN_DIGITS);
            let valid = (MIN_PAN_DIGITS..=longest).any(|len| {
                let s = count - len;
                prefix[q][s & 31] == sum[q] && issuable(digit_at[s & 31], len)
            });
            if valid {
                hit = Some(count);
            }
        }
    }
    let e = hit?;
    let q = (count - 1) % 2;
    let whole = count <= MAX_PAN_DIGITS && sum[q] == 0 && issuable(digit_at[0], count);
    Some(if whole { count } else { e } - 4)
}

/// Whether `text` contains something that looks like a card number.
pub fn contains_pan(text: &str) -> bool {
    contains_pan_bytes(text.as_bytes())
}

/// [`contains_pan`] over raw bytes (a request body before it is parsed, a log line).
pub fn contains_pan_bytes(text: &[u8]) -> bool {
    let mut any = false;
    scan(text, |_| {
        any = true;
        false
    });
    any
}

/// `text` with every card number masked (see the module doc): `**** **** **** 1111 ***`.
pub fn mask_pans(text: &str) -> String {
    match mask_bytes(text.as_bytes()) {
        // Only ASCII digits were replaced by an ASCII byte, so the text is still UTF-8.
        Some(masked) => String::from_utf8(masked).unwrap_or_default(),
        None => text.to_owned(),
    }
}

/// `text` with every card number masked, or `None` when it holds none.
pub fn mask_bytes(text: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    scan(text, |f| {
        let buf = out.get_or_insert_with(|| text.to_vec());
        let mut index = 0;
        for b in &mut buf[f.start..f.end] {
            if b.is_ascii_digit() {
                if !(f.keep..f.keep + 4).contains(&index) {
                    *b = b'*';
                }
                index += 1;
            }
        }
        true
    });
    out
}

#[cfg(test)]
pub(crate) mod tests;
