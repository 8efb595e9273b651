//! How each field of a received HPACK block was represented (RFC 7541
//! section 6), without decoding names or values: enough to tell a field
//! sent as never indexed from the others.

/// The kind of one field representation, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Representation {
    Indexed,
    IncrementalIndexing,
    WithoutIndexing,
    NeverIndexed,
    SizeUpdate,
}

/// The representations in `block`, in order; `None` if it is truncated or
/// an integer overflows.
pub(super) fn representations(block: &[u8]) -> Option<Vec<Representation>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < block.len() {
        let first = block[at];
        let (kind, prefix) = match first {
            b if b & 0x80 != 0 => (Representation::Indexed, 7),
            b if b & 0xc0 == 0x40 => (Representation::IncrementalIndexing, 6),
            b if b & 0xe0 == 0x20 => (Representation::SizeUpdate, 5),
            b if b & 0xf0 == 0x10 => (Representation::NeverIndexed, 4),
            _ => (Representation::WithoutIndexing, 4),
        };
        let index = integer(block, &mut at, prefix)?;
        if matches!(
            kind,
            Representation::IncrementalIndexing
                | Representation::WithoutIndexing
                | Representation::NeverIndexed
        ) {
            if index == 0 {
                skip_string(block, &mut at)?; // a new name
            }
            skip_string(block, &mut at)?; // the value
        }
        out.push(kind);
    }
    Some(out)
}

/// An integer with an N-bit prefix starting at `block[*at]`.
fn integer(block: &[u8], at: &mut usize, prefix: u32) -> Option<u64> {
    let max = (1u64 << prefix) - 1;
    let mut value = u64::from(*block.get(*at)?) & max;
    *at += 1;
    if value < max {
        return Some(value);
    }
    for shift in (0..63).step_by(7) {
        let byte = *block.get(*at)?;
        *at += 1;
        value = value.checked_add(u64::from(byte & 0x7f) << shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Steps over a string literal (Huffman-coded or not).
fn skip_string(block: &[u8], at: &mut usize) -> Option<()> {
    let len = usize::try_from(integer(block, at, 7)?).ok()?;
    *at = at.checked_add(len).filter(|end| *end <= block.len())?;
    Some(())
}

#[test]
fn the_rfc_examples_are_read_field_by_field() {
    use Representation::*;
    // RFC 7541 C.2.1 (new name, incremental), C.2.2 (indexed name, without
    // indexing), C.2.3 (new name, never indexed), C.2.4 (indexed), then a
    // size update and an integer that needs continuation bytes (C.1.2).
    let mut block = Vec::new();
    block.extend(b"\x40\x0acustom-key\x0dcustom-header");
    block.extend(b"\x04\x0c/sample/path");
    block.extend(b"\x10\x08password\x06secret");
    block.extend(b"\x82");
    block.extend(b"\x3f\xe1\x1f");
    assert_eq!(
        representations(&block),
        Some(vec![
            IncrementalIndexing,
            WithoutIndexing,
            NeverIndexed,
            Indexed,
            SizeUpdate
        ])
    );
    assert_eq!(representations(b"\x10\x08passwo"), None);
    assert_eq!(
        representations(b"\x3f\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
        None
    );
}
