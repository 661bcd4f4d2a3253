//! How a version's JSON is kept in the database: LZ4-compressed. A FHIR
//! body shrinks to a half or a third, so two or three fit in a page the
//! plain JSON would fill alone, and a write puts that much less into the
//! log, the checkpoints and the file. Decompressing costs about a
//! microsecond per kilobyte on a read.
//!
//! A stored body is the compressed JSON behind a marker byte, or plain JSON
//! (which always starts with `{`): small bodies are kept as they are.

use crate::{Result, StoreError};

/// Marks an LZ4 block with its uncompressed size in front.
const LZ4: u8 = 0x01;

/// Bodies smaller than this are not worth compressing.
const SMALLEST_COMPRESSED: usize = 256;

/// The stored form of a JSON body.
pub(crate) fn encode(json: &[u8]) -> Vec<u8> {
    if json.len() < SMALLEST_COMPRESSED {
        return json.to_vec();
    }
    let compressed = lz4_flex::compress_prepend_size(json);
    let mut stored = Vec::with_capacity(compressed.len() + 1);
    stored.push(LZ4);
    stored.extend_from_slice(&compressed);
    stored
}

/// The JSON of a stored body.
pub(crate) fn decode(stored: Vec<u8>) -> Result<Vec<u8>> {
    match stored.first() {
        Some(b'{') => Ok(stored),
        Some(&LZ4) => lz4_flex::decompress_size_prepended(&stored[1..])
            .map_err(|e| StoreError::Database(format!("a stored body cannot be read: {e}"))),
        _ => Err(StoreError::Database(
            "a stored body has an unknown encoding".into(),
        )),
    }
}

/// [`decode`] for an optional body (`None` is a deletion).
pub(crate) fn decode_opt(stored: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
    stored.map(decode).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_come_back_as_written() {
        let small = br#"{"resourceType":"Basic"}"#.to_vec();
        assert_eq!(encode(&small), small);
        assert_eq!(decode(encode(&small)).unwrap(), small);
        let large = format!(
            r#"{{"resourceType":"Basic","text":"{}"}}"#,
            "repeated words ".repeat(100)
        )
        .into_bytes();
        let stored = encode(&large);
        assert_eq!(stored[0], LZ4);
        assert!(stored.len() < large.len() / 4, "{}", stored.len());
        assert_eq!(decode(stored).unwrap(), large);
        assert!(decode(vec![0x7f, 1, 2]).is_err());
    }
}
