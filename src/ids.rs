//! Random identifiers in Kafka's textual form: 16-byte UUIDs written as URL-safe base64
//! without padding (22 characters), as in `meta.properties` and `partition.metadata`.

use std::io::Read;

/// A 16-byte identifier (Kafka's `Uuid`, used for topic ids and cluster ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Uuid {
    /// A fresh random id from the kernel's random source, with the version-4 bits set.
    /// Kafka reserves the all-zero id and ids starting with '-' in text, so both are avoided.
    pub fn random() -> std::io::Result<Uuid> {
        let mut file = std::fs::File::open("/dev/urandom")?;
        loop {
            let mut bytes = [0u8; 16];
            file.read_exact(&mut bytes)?;
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let id = Uuid(bytes);
            if id.0 != [0; 16] && !id.to_base64().starts_with('-') {
                return Ok(id);
            }
        }
    }

    /// URL-safe base64 without padding.
    pub fn to_base64(&self) -> String {
        let mut out = String::with_capacity(22);
        let mut bits: u32 = 0;
        let mut bit_count = 0;
        for &byte in &self.0 {
            bits = (bits << 8) | u32::from(byte);
            bit_count += 8;
            while bit_count >= 6 {
                bit_count -= 6;
                out.push(ALPHABET[((bits >> bit_count) & 0x3f) as usize] as char);
            }
        }
        if bit_count > 0 {
            out.push(ALPHABET[((bits << (6 - bit_count)) & 0x3f) as usize] as char);
        }
        out
    }

    /// Parse the 22-character form; `None` if it is not one.
    pub fn from_base64(text: &str) -> Option<Uuid> {
        if text.len() != 22 {
            return None;
        }
        let mut bytes = [0u8; 16];
        let mut bits: u32 = 0;
        let mut bit_count = 0;
        let mut index = 0;
        for ch in text.bytes() {
            let value = ALPHABET.iter().position(|&a| a == ch)? as u32;
            bits = (bits << 6) | value;
            bit_count += 6;
            if bit_count >= 8 {
                bit_count -= 8;
                if index < 16 {
                    bytes[index] = ((bits >> bit_count) & 0xff) as u8;
                    index += 1;
                }
            }
        }
        Some(Uuid(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for _ in 0..100 {
            let id = Uuid::random().unwrap();
            let text = id.to_base64();
            assert_eq!(text.len(), 22);
            assert_eq!(Uuid::from_base64(&text), Some(id));
        }
    }

    #[test]
    fn known_value_matches_kafka_encoding() {
        // All ones: 16 bytes of 0xff -> 21 '_' then 'w'.
        assert_eq!(Uuid([0xff; 16]).to_base64(), "_____________________w");
    }
}
