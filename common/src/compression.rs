//! A batch's bytes compressed for the trip through NATS.
//!
//! JetStream stores every message on disk, then copies it out to a consumer: on a
//! 2-core machine nats-server spent about as much CPU on a million typed users as
//! mongod did, nearly all of it per byte (socket and file copies, hashing). A
//! snapshot's documents repeat their field names and many of their values, so LZ4
//! (the `lz4_flex` crate: pure Rust, 650 MB/s to compress, 2 GB/s to decompress here)
//! cuts them to about 40% for a fraction of that CPU.
//!
//! A packed payload is [`MARK`] (a byte msgpack never writes, so it cannot be mistaken
//! for a plain envelope), the codec, the unpacked length (u32, little-endian), then
//! the LZ4 block. A payload that would not shrink stays plain, so a packed payload is
//! never larger than the envelope it carries: the batch limits, counted on the plain
//! envelope, still keep every message within NATS' `max_payload`.

use std::borrow::Cow;

/// How the producer packs batches for NATS (`--compression`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// LZ4: a batch of typed users to about 40% of its bytes, flat users to a quarter.
    #[default]
    Lz4,
    /// Plain msgpack, which consumers of every version read.
    None,
}

/// The first byte of a packed payload: `0xc1` is "never used" in msgpack.
pub const MARK: u8 = 0xc1;

/// The codec byte of an LZ4 block.
const LZ4: u8 = 1;

/// Mark, codec, unpacked length.
const HEADER: usize = 6;

/// The largest unpacked size read: NATS' `max_payload` is at most 64 MiB, and a plain
/// envelope is never packed larger than it was. A header claiming more is corrupt,
/// and is refused before anything is allocated.
const MAX_UNPACKED: usize = 64 << 20;

/// Why a packed payload cannot be unpacked: the same bytes fail the same way on every
/// delivery.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnpackError {
    /// The header is cut short, names an unknown codec or an impossible size.
    #[error("a compressed batch with a bad header: {0}")]
    Header(String),
    /// The LZ4 block is not what its header says.
    #[error("a compressed batch that does not decompress: {0}")]
    Corrupt(String),
}

/// `plain` as it travels with `compression`: packed when that makes it smaller.
pub fn pack(plain: Vec<u8>, compression: Compression) -> Vec<u8> {
    let Compression::Lz4 = compression else {
        return plain;
    };
    let Ok(len) = u32::try_from(plain.len()) else {
        return plain;
    };
    let mut packed = vec![0; HEADER + lz4_flex::block::get_maximum_output_size(plain.len())];
    let Ok(written) = lz4_flex::block::compress_into(&plain, &mut packed[HEADER..]) else {
        return plain;
    };
    if HEADER + written >= plain.len() {
        return plain;
    }
    packed[0] = MARK;
    packed[1] = LZ4;
    packed[2..HEADER].copy_from_slice(&len.to_le_bytes());
    packed.truncate(HEADER + written);
    // Held until NATS acknowledges it, with others in flight: not at the capacity
    // the worst case needed.
    packed.shrink_to_fit();
    packed
}

/// The plain envelope bytes of a payload, packed or not: borrowed when it was plain.
///
/// # Errors
/// [`UnpackError`] when the payload is marked packed but is not a whole LZ4 block of
/// the size its header says.
pub fn unpack(payload: &[u8]) -> Result<Cow<'_, [u8]>, UnpackError> {
    if payload.first() != Some(&MARK) {
        return Ok(Cow::Borrowed(payload));
    }
    let Some((header, block)) = payload.split_first_chunk::<HEADER>() else {
        return Err(UnpackError::Header(format!(
            "{} bytes, shorter than the header",
            payload.len()
        )));
    };
    if header[1] != LZ4 {
        return Err(UnpackError::Header(format!("unknown codec {}", header[1])));
    }
    let len = u32::from_le_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if len > MAX_UNPACKED {
        return Err(UnpackError::Header(format!(
            "claims {len} bytes unpacked, more than the {MAX_UNPACKED} any batch holds"
        )));
    }
    let mut plain = vec![0; len];
    let written = lz4_flex::block::decompress_into(block, &mut plain)
        .map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    if written != len {
        return Err(UnpackError::Corrupt(format!(
            "{written} bytes unpacked where the header says {len}"
        )));
    }
    Ok(Cow::Owned(plain))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that repeat, as a batch of documents does.
    fn repetitive() -> Vec<u8> {
        (0..2_000u32)
            .flat_map(|i| format!("{{username: user{i:07}, city: Montréal}}").into_bytes())
            .collect()
    }

    #[test]
    fn a_packed_payload_unpacks_to_the_same_bytes_and_is_smaller() {
        let plain = repetitive();
        let packed = pack(plain.clone(), Compression::Lz4);
        assert_eq!(packed[0], MARK);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} of {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(unpack(&packed).expect("unpacks"), plain);
    }

    #[test]
    fn a_payload_that_would_not_shrink_stays_plain_and_is_read_as_it_is() {
        // Bytes with nothing to share: a counter's hash stream.
        let noise: Vec<u8> = (0..4_096u32)
            .flat_map(|i| blake3::hash(&i.to_le_bytes()).as_bytes()[..8].to_vec())
            .collect();
        let packed = pack(noise.clone(), Compression::Lz4);
        assert_eq!(packed, noise);
        assert!(matches!(unpack(&packed).expect("unpacks"), Cow::Borrowed(b) if b == noise));
        assert_eq!(pack(repetitive(), Compression::None), repetitive());
        assert_eq!(pack(Vec::new(), Compression::Lz4), Vec::<u8>::new());
    }

    #[test]
    fn bad_bytes_after_the_mark_are_refused_with_a_reason() {
        let packed = pack(repetitive(), Compression::Lz4);
        let cut = unpack(&packed[..packed.len() / 2]).expect_err("refused");
        assert!(matches!(cut, UnpackError::Corrupt(_)), "{cut}");
        assert!(matches!(
            unpack(&[MARK, 1, 0]).expect_err("refused"),
            UnpackError::Header(_)
        ));
        let mut codec = packed.clone();
        codec[1] = 9;
        assert_eq!(
            unpack(&codec).expect_err("refused"),
            UnpackError::Header("unknown codec 9".to_string())
        );
        let mut huge = packed.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&huge)
            .expect_err("refused")
            .to_string()
            .contains("more than"));
        // A header one byte short of the truth: the block does not fit.
        let mut short = packed.clone();
        let len = u32::from_le_bytes([short[2], short[3], short[4], short[5]]) - 1;
        short[2..6].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            unpack(&short).expect_err("refused"),
            UnpackError::Corrupt(_)
        ));
        // One byte too many claimed: fewer bytes come out than the header says.
        let mut long = packed;
        let len = u32::from_le_bytes([long[2], long[3], long[4], long[5]]) + 1;
        long[2..6].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(
            unpack(&long).expect_err("refused"),
            UnpackError::Corrupt(_)
        ));
    }
}
