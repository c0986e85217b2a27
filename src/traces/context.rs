//! A span's identity as W3C Trace Context carries it: the `traceparent` field read from a
//! request and written to the next hop. It parses and formats; it decides nothing.

use http::HeaderValue;

/// The `traceparent` field's name.
pub const TRACEPARENT: &str = "traceparent";

/// Where a span sits in its trace, and whether it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace's id (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The span's id (8 bytes, never all zero).
    pub span_id: [u8; 8],
    /// Whether the span is recorded (the `sampled` flag): children follow it.
    pub sampled: bool,
}

impl SpanContext {
    /// The context a `traceparent` value names, or `None` when it is malformed (the request
    /// then starts a trace of its own, as the W3C recommendation says). Version `00` must be
    /// exactly 55 characters; a later version may add fields after a `-`; `ff` is invalid;
    /// hex digits are lowercase; all-zero ids are invalid.
    pub fn parse(value: &[u8]) -> Option<SpanContext> {
        if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&value[0..2])?;
        match version[0] {
            0xff => return None,
            0 if value.len() != 55 => return None,
            _ if value.len() > 55 && value[55] != b'-' => return None,
            _ => {}
        }
        let trace_id = hex::<16>(&value[3..35])?;
        let span_id = hex::<8>(&value[36..52])?;
        let flags = hex::<1>(&value[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// The `traceparent` of a request's first field of that name (several: the first is
    /// read, as a field list's first member).
    pub fn from_headers(headers: &http::HeaderMap) -> Option<SpanContext> {
        headers
            .get(TRACEPARENT)
            .and_then(|value| SpanContext::parse(value.as_bytes()))
    }

    /// This context as a `traceparent` value (version `00`).
    pub fn to_header(&self) -> HeaderValue {
        let mut text = [0u8; 55];
        text[..3].copy_from_slice(b"00-");
        write_hex(&mut text[3..35], &self.trace_id);
        text[35] = b'-';
        write_hex(&mut text[36..52], &self.span_id);
        text[52] = b'-';
        text[53] = b'0';
        text[54] = if self.sampled { b'1' } else { b'0' };
        // Only ASCII hex digits and dashes: always a valid field value.
        HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// `N` bytes from `2 * N` lowercase hex digits.
fn hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (index, pair) in text.chunks_exact(2).enumerate() {
        out[index] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// Writes `bytes` as lowercase hex into `out` (twice their length).
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in bytes.iter().enumerate() {
        out[2 * index] = DIGITS[usize::from(byte >> 4)];
        out[2 * index + 1] = DIGITS[usize::from(byte & 15)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_is_read_and_written_back() {
        let context = SpanContext::parse(VALID.as_bytes()).unwrap();
        assert!(context.sampled);
        assert_eq!(&context.trace_id[..2], &[0x4b, 0xf9]);
        assert_eq!(
            context.span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert_eq!(context.to_header(), VALID);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let context = SpanContext::parse(unsampled.as_bytes()).unwrap();
        assert!(!context.sampled);
        assert_eq!(context.to_header(), unsampled);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(SpanContext::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let context = SpanContext::parse(later.as_bytes()).unwrap();
        assert!(context.sampled);
        assert_eq!(context.to_header(), VALID);
    }
}
