//! Compression of what the embedded store keeps on disk.
//!
//! **Records.** An event is about 440 bytes of JSON and its decision about
//! 280, and most of both is the same field names, feature names and
//! enrichment in every record. Compressed alone, a record of that size
//! barely shrinks (zstd finds little to refer back to in 440 bytes); with a
//! dictionary that already holds those names it shrinks about five times.
//! The dictionary ([`RECORD_DICTIONARY`], `record_dictionary.jsonl`) is one
//! event and one decision of each event type, allowed and not, as `custos
//! bench generate` writes them; zstd uses it as raw content that a record
//! may refer back to. A stored value is a BLOB whose first byte names the
//! codec ([`RECORD_ZSTD_V1`]), then a zstd frame that carries its own
//! length. Records written before compression are TEXT and read as they
//! are, so no data directory needs migrating. The dictionary can never
//! change under a codec byte: records compressed with it need the same
//! bytes to be read. A better dictionary is a new codec byte beside this
//! one.
//!
//! **Snapshots.** The JSON-lines state is compressed as one zstd stream at
//! a low level while it is stored ([`compress_snapshot`]), and read back
//! through [`read_snapshot`], which recognises zstd's magic number; a
//! snapshot stored before compression starts with `{` and is read as it
//! is.
//!
//! Compression runs on the writer thread, inside the group commit; its cost
//! per record and the sizes it gives are in BENCHMARKS.md.

use std::cell::RefCell;
use std::io::{BufReader, Read};
use std::sync::OnceLock;

use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// Codec byte: zstd at [`RECORD_LEVEL`] with [`RECORD_DICTIONARY`].
pub const RECORD_ZSTD_V1: u8 = 1;

/// The raw-content dictionary of [`RECORD_ZSTD_V1`]. Never edit it.
pub const RECORD_DICTIONARY: &[u8] = include_bytes!("record_dictionary.jsonl");

/// zstd's level for records: level 3 gave smaller records than 1 and 2 on
/// the generated marketplace (85 and 56 bytes for the event and decision
/// against 102 and 58 at level 1), at a few microseconds a record.
const RECORD_LEVEL: i32 = 3;

/// zstd's level for snapshots: the fastest, since a snapshot is hundreds of
/// megabytes compressed while the engine runs beside it.
const SNAPSHOT_LEVEL: i32 = 1;

/// What a record stored as a BLOB may grow back to, at most. Far above any
/// event the API accepts; a frame that claims more is damaged.
const RECORD_MAX_BYTES: u64 = 64 << 20;

/// zstd's frame magic number, as the first four bytes of a frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static DICTIONARY: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| EncoderDictionary::copy(RECORD_DICTIONARY, RECORD_LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static DICTIONARY: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    DICTIONARY.get_or_init(|| DecoderDictionary::copy(RECORD_DICTIONARY))
}

thread_local! {
    // One context per thread: creating a zstd context costs more than
    // compressing a record.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `text` as stored: the codec byte, then its zstd frame.
pub fn compress_record(text: &str) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some(compressor) => compressor,
            empty => empty.insert(zstd::bulk::Compressor::with_prepared_dictionary(
                encoder_dictionary(),
            )?),
        };
        // The frame is written straight after the codec byte, into room
        // for the largest frame: one allocation, no copy.
        let mut out = Vec::with_capacity(1 + zstd::zstd_safe::compress_bound(text.len()));
        out.push(RECORD_ZSTD_V1);
        let mut out = std::io::Cursor::new(out);
        out.set_position(1);
        compressor.compress_to_buffer(text.as_bytes(), &mut out)?;
        Ok(out.into_inner())
    })
}

/// The text of a record stored by [`compress_record`].
pub fn decompress_record(stored: &[u8]) -> std::io::Result<String> {
    let Some((&codec, frame)) = stored.split_first() else {
        return Err(std::io::Error::other("an empty record"));
    };
    if codec != RECORD_ZSTD_V1 {
        return Err(std::io::Error::other(format!(
            "a record in codec {codec}, which this build does not know"
        )));
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(size)) if size <= RECORD_MAX_BYTES => size as usize,
        Ok(Some(size)) => {
            return Err(std::io::Error::other(format!(
                "a record that claims {size} bytes"
            )));
        }
        _ => return Err(std::io::Error::other("a record without its length")),
    };
    let bytes = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match &mut *cell {
            Some(decompressor) => decompressor,
            empty => empty.insert(zstd::bulk::Decompressor::with_prepared_dictionary(
                decoder_dictionary(),
            )?),
        };
        decompressor.decompress(frame, size)
    })?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("a record that is not UTF-8"))
}

/// Reads `state` compressed: what a backend stores as the snapshot.
pub fn compress_snapshot<'a>(state: &'a mut dyn Read) -> std::io::Result<impl Read + 'a> {
    zstd::stream::read::Encoder::new(state, SNAPSHOT_LEVEL)
}

/// The snapshot a backend stored, as the state it was given: decompressed
/// when it starts with zstd's magic number, as it is otherwise (a snapshot
/// stored before compression).
pub fn read_snapshot<'a>(stored: Box<dyn Read + 'a>) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut stored = BufReader::with_capacity(1 << 16, stored);
    let head = std::io::BufRead::fill_buf(&mut stored)?;
    if head.starts_with(&ZSTD_MAGIC) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(stored)?))
    } else {
        Ok(Box::new(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written_and_smaller() {
        let text = r#"{"event_id":"e-1","type":"login","account_id":"seller-1","time":"2026-01-01T00:00:00Z","ip":"192.0.2.1","device_id":"d-1","status":"success"}"#;
        let stored = compress_record(text).unwrap();
        assert_eq!(stored[0], RECORD_ZSTD_V1);
        assert!(stored.len() < text.len() / 2, "{} bytes", stored.len());
        assert_eq!(decompress_record(&stored).unwrap(), text);
        // Text that shares nothing with the dictionary reads back too.
        let odd = "ünïcödé \u{1f600} and \"quotes\"".repeat(50);
        assert_eq!(
            decompress_record(&compress_record(&odd).unwrap()).unwrap(),
            odd
        );
        assert_eq!(
            decompress_record(&compress_record("").unwrap()).unwrap(),
            ""
        );
    }

    #[test]
    fn a_damaged_or_unknown_record_is_an_error_not_a_panic() {
        let stored = compress_record(r#"{"a":1}"#).unwrap();
        let mut unknown = stored.clone();
        unknown[0] = 9;
        assert!(
            decompress_record(&unknown)
                .unwrap_err()
                .to_string()
                .contains("codec 9")
        );
        assert!(decompress_record(&[]).is_err());
        assert!(decompress_record(&stored[..stored.len() / 2]).is_err());
        let mut flipped = stored.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        // zstd's frame has no checksum here, so a flipped byte may decode
        // to other text; it must not panic either way.
        let _ = decompress_record(&flipped);
    }

    #[test]
    fn a_snapshot_reads_back_compressed_or_as_stored_before() {
        let state = "{\"format\":9}\n".repeat(10_000);
        let mut compressed = Vec::new();
        compress_snapshot(&mut state.as_bytes())
            .unwrap()
            .read_to_end(&mut compressed)
            .unwrap();
        assert!(compressed.len() < state.len() / 10);
        let mut back = String::new();
        read_snapshot(Box::new(&compressed[..]))
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, state);
        let mut plain = String::new();
        read_snapshot(Box::new(state.as_bytes()))
            .unwrap()
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, state);
    }
}
