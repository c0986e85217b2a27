//! Finished spans as an OTLP `ExportTraceServiceRequest` in protobuf (the field numbers of
//! `opentelemetry/proto/collector/trace/v1/trace_service.proto` and the messages it names),
//! and the gRPC frame around it. It encodes; it never sends.

use super::{Kind, SpanRecord, Value};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH: u8 = 2;
const FIXED32: u8 = 5;

/// The `ExportTraceServiceRequest` holding `spans`, all of one resource and one scope.
pub fn export_request(resource: &[(String, String)], spans: &[SpanRecord]) -> Vec<u8> {
    let mut request = Vec::with_capacity(256 + spans.len() * 400);
    // ExportTraceServiceRequest.resource_spans = 1
    message(&mut request, 1, |out| {
        // ResourceSpans.resource = 1: Resource { attributes = 1 }
        message(out, 1, |out| {
            for (key, value) in resource {
                message(out, 1, |kv| {
                    string(kv, 1, key);
                    message(kv, 2, |any| string(any, 1, value));
                });
            }
        });
        // ResourceSpans.scope_spans = 2: ScopeSpans { scope = 1, spans = 2 }
        message(out, 2, |out| {
            message(out, 1, |scope| {
                string(scope, 1, "paastis");
                string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                message(out, 2, |out| encode_span(out, span));
            }
        });
    });
    request
}

/// `message` compressed with gzip (what `Content-Encoding: gzip` and `grpc-encoding: gzip`
/// say).
pub fn gzip(message: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(message.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing to memory cannot fail.
    let _ = encoder.write_all(message);
    encoder.finish().unwrap_or_default()
}

/// A message in a gRPC frame: whether it is `compressed` (the flag), its length, itself.
pub fn grpc_frame(message: &[u8], compressed: bool) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(u8::from(compressed));
    framed.extend_from_slice(
        &u32::try_from(message.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(message);
    framed
}

/// One `Span` message's fields.
fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes(out, 1, &span.context.trace_id);
    bytes(out, 2, &span.context.span_id);
    if let Some(parent) = &span.parent {
        bytes(out, 4, parent);
    }
    string(out, 5, &span.name);
    tag(out, 6, VARINT);
    varint(
        out,
        match span.kind {
            Kind::Internal => 1,
            Kind::Server => 2,
            Kind::Client => 3,
        },
    );
    tag(out, 7, FIXED64);
    out.extend_from_slice(&span.start.to_le_bytes());
    tag(out, 8, FIXED64);
    out.extend_from_slice(&span.end.max(span.start).to_le_bytes());
    for (key, value) in &span.attributes {
        message(out, 9, |kv| key_value(kv, key, value));
    }
    // Status { message = 2, code = 3 (1 ok, 2 error) }: unset unless the span failed.
    if let Some(reason) = &span.error {
        message(out, 15, |status| {
            string(status, 2, reason);
            tag(status, 3, VARINT);
            varint(status, 2);
        });
    }
    // flags = 16: the W3C trace flags (sampled), and whether the parent is remote known.
    tag(out, 16, FIXED32);
    let mut flags: u32 = u32::from(span.context.sampled);
    if span.parent.is_some() {
        // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK (0x100), and IS_REMOTE (0x200) for a parent
        // that came from another process.
        flags |= 0x100;
        if span.remote_parent {
            flags |= 0x200;
        }
    }
    out.extend_from_slice(&flags.to_le_bytes());
}

/// A `KeyValue { key = 1, value = 2: AnyValue }`.
fn key_value(out: &mut Vec<u8>, key: &str, value: &Value) {
    string(out, 1, key);
    message(out, 2, |any| match value {
        Value::Text(text) => string(any, 1, text),
        Value::Bool(flag) => {
            tag(any, 2, VARINT);
            varint(any, u64::from(*flag));
        }
        Value::Int(number) => {
            tag(any, 3, VARINT);
            // int64: two's complement as a 64-bit varint.
            varint(any, *number as u64);
        }
        Value::Shared(text) => string(any, 1, text),
        Value::Ip(ip) => {
            use std::io::Write;
            // string_value = 1, its length in one byte (an address is at most 45).
            tag(any, 1, LENGTH);
            let at = any.len();
            any.push(0);
            let _ = write!(any, "{ip}");
            any[at] = (any.len() - at - 1) as u8;
        }
    });
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    tag(out, field, LENGTH);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

/// A nested message, written in place by `fill` after a one-byte length, which grows (the
/// message moved along) when it is 128 bytes or more: no buffer of its own.
fn message(out: &mut Vec<u8>, field: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LENGTH);
    let at = out.len();
    out.push(0);
    fill(out);
    let length = out.len() - at - 1;
    if length < 0x80 {
        out[at] = length as u8;
    } else {
        let mut prefix = Vec::with_capacity(10);
        varint(&mut prefix, length as u64);
        out.splice(at..=at, prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 1);
        varint(&mut out, 300);
        varint(&mut out, u64::MAX);
        assert_eq!(&out[..3], &[1, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 10);
    }

    #[test]
    fn long_nested_messages_get_their_whole_length() {
        let mut out = Vec::new();
        message(&mut out, 1, |inner| inner.extend_from_slice(&[7; 300]));
        // tag, then 300 as a two-byte varint, then the message.
        assert_eq!(&out[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 300);
        let mut short = Vec::new();
        message(&mut short, 2, |inner| inner.push(1));
        assert_eq!(short, vec![0x12, 1, 1]);
    }

    #[test]
    fn a_grpc_frame_is_a_flag_and_a_big_endian_length() {
        assert_eq!(grpc_frame(&[7, 8], false), vec![0, 0, 0, 0, 2, 7, 8]);
        assert_eq!(grpc_frame(&[7, 8], true), vec![1, 0, 0, 0, 2, 7, 8]);
    }

    #[test]
    fn gzip_gives_back_the_message_once_decompressed() {
        use std::io::Read as _;
        let message: Vec<u8> = (0..4096u32).map(|n| (n % 7) as u8).collect();
        let compressed = gzip(&message);
        assert!(compressed.len() < message.len() / 4, "{}", compressed.len());
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut decoded)
            .expect("gzip");
        assert_eq!(decoded, message);
    }
}
