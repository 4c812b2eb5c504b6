//! Byte sizes as users write them: `1048576`, `512K`, `64M`, `1G`, `2T` (binary units, an optional
//! trailing `B` or `iB`). One parser so every option and config key accepts the same spellings.

use anyhow::{bail, Result};

/// Parses a size such as `64M` into bytes. Rejects zero-length, negative, fractional and overflowing
/// values with a message that shows the accepted forms.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B')).unwrap_or(&upper);
    let (digits, shift) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 10),
        Some('M') => (&body[..body.len() - 1], 20),
        Some('G') => (&body[..body.len() - 1], 30),
        Some('T') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("invalid size {text:?}: use a whole number of bytes or a suffix, like 1048576, 512K, 64M, 1G");
    }
    let n: u64 = digits.parse().map_err(|_| anyhow::anyhow!("size {text:?} is too large"))?;
    n.checked_mul(1u64 << shift).ok_or_else(|| anyhow::anyhow!("size {text:?} is too large"))
}

/// Formats bytes for humans, e.g. `1.5 GiB`; exact below 1 KiB.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_spellings() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "M", "-1", "1.5G", "abc", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
