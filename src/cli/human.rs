//! Numbers for people: sizes in decimal units, as `docker` prints them.

use std::fmt;

/// A byte count shown with one decimal in kB, MB, GB, TB (powers of 1000): `18.3 MB`;
/// below 1000 bytes, the bytes: `512 B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
        let bytes = self.0;
        if bytes < 1000 {
            return write!(f, "{bytes} B");
        }
        let mut unit = 1000u64;
        for (i, name) in UNITS.iter().enumerate() {
            // Tenths of this unit, rounded; 999.95 kB is 1.0 MB (in u64 without
            // overflow: no wider integer formatting in the binary).
            let tenths = bytes / unit * 10 + (bytes % unit * 10 + unit / 2) / unit;
            if tenths < 10_000 || i + 1 == UNITS.len() {
                return write!(f, "{}.{} {name}", tenths / 10, tenths % 10);
            }
            unit *= 1000;
        }
        Ok(())
    }
}

/// `n` and the noun for it: `1 image`, `9 images`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_decimal_units_with_one_decimal() {
        let shown = |n: u64| Bytes(n).to_string();
        assert_eq!(shown(0), "0 B");
        assert_eq!(shown(999), "999 B");
        assert_eq!(shown(1000), "1.0 kB");
        assert_eq!(shown(1049), "1.0 kB");
        assert_eq!(shown(1050), "1.1 kB");
        assert_eq!(shown(18_349_999), "18.3 MB");
        assert_eq!(shown(999_949), "999.9 kB");
        assert_eq!(shown(999_950), "1.0 MB");
        assert_eq!(shown(4_000_000_000), "4.0 GB");
        assert_eq!(shown(u64::MAX), "18446.7 PB");
        assert_eq!(count(1, "image", "images"), "1 image");
        assert_eq!(count(0, "image", "images"), "0 images");
    }
}
