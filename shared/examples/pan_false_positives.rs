//! How often digit strings that are not card numbers look like one to paybridge's detector:
//! 200,000 random samples of each shape, printed as a table (docs/webhook-intake.md#pci quotes it).
//!
//! `cargo run --release -p paybridge --example pan_false_positives`

use paybridge::domain::ChargeId;
use paybridge::domain::pci::contains_pan;

const SAMPLES: usize = 200_000;

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn from(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }
}

fn main() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let digits = b"0123456789";
    let base36 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let base62 = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    type Shape<'a> = (&'a str, Box<dyn FnMut(&mut Rng) -> String + 'a>);
    let shapes: Vec<Shape> = vec![
        (
            "UUIDv4, with dashes",
            Box::new(|_| uuid::Uuid::new_v4().hyphenated().to_string()),
        ),
        (
            "UUIDv4, 32 hex",
            Box::new(|_| uuid::Uuid::new_v4().simple().to_string()),
        ),
        (
            "UUIDv7 (now), with dashes",
            Box::new(|_| uuid::Uuid::now_v7().hyphenated().to_string()),
        ),
        (
            "UUIDv7 (now), 32 hex",
            Box::new(|_| uuid::Uuid::now_v7().simple().to_string()),
        ),
        (
            "paybridge id (`ch_…`, drawn again if needed)",
            Box::new(|_| ChargeId::generate().to_string()),
        ),
        (
            "Stripe-like id (24 base62)",
            Box::new(|r| format!("pi_{}", r.from(base62, 24))),
        ),
        (
            "Adyen pspReference, 16 of A–Z0–9",
            Box::new(|r| r.from(base36, 16)),
        ),
        (
            "Adyen pspReference, 16 digits",
            Box::new(|r| format!("{}{}", 1 + r.below(9), r.from(digits, 15))),
        ),
        (
            "unix seconds, 2026",
            Box::new(|r| (1_767_225_600 + r.below(31_536_000)).to_string()),
        ),
        (
            "unix ms, 2026",
            Box::new(|r| (1_767_225_600_000 + r.below(31_536_000_000)).to_string()),
        ),
        (
            "unix ms, 2040",
            Box::new(|r| (2_208_988_800_000 + r.below(31_536_000_000)).to_string()),
        ),
        (
            "unix µs, 2026",
            Box::new(|r| (1_767_225_600_000_000 + r.below(31_536_000_000_000)).to_string()),
        ),
        (
            "unix ns, 2026",
            Box::new(|r| (1_767_225_600_000_000_000 + r.below(31_536_000_000_000_000)).to_string()),
        ),
        (
            "E.164, +49 and 10–11 digits",
            Box::new(|r| format!("+49{}", 1_000_000_000 + r.below(99_000_000_000))),
        ),
        (
            "E.164, 15 digits",
            Box::new(|r| format!("+{}{}", 1 + r.below(9), r.from(digits, 14))),
        ),
        (
            "German IBAN, grouped",
            Box::new(|r| {
                let d = r.from(digits, 20);
                format!(
                    "DE{} {} {} {} {} {}",
                    &d[0..2],
                    &d[2..6],
                    &d[6..10],
                    &d[10..14],
                    &d[14..18],
                    &d[18..20]
                )
            }),
        ),
        (
            "19-digit snowflake id",
            Box::new(|r| {
                (1_500_000_000_000_000_000 + r.below(500_000_000_000_000_000)).to_string()
            }),
        ),
        ("16 random digits", Box::new(|r| r.from(digits, 16))),
    ];
    println!("| shape | looks like a card number |\n|---|---|");
    for (name, mut make) in shapes {
        let hits = (0..SAMPLES)
            .filter(|_| contains_pan(&make(&mut rng)))
            .count();
        println!("| {name} | {:.2} % |", hits as f64 * 100.0 / SAMPLES as f64);
    }
}
