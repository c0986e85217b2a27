//! An answer's header fields kept as the upstream wrote them. A direct connection's answer
//! that needs no change but the proxy's `Via` keeps its fields as places in its head's
//! bytes: the engine's own HTTP/1.1 server copies them line by line, without a header map
//! made only to be written out again (`scripts/bench-instructions.sh`: see
//! docs/src/benchmarks.md). Whatever else takes such an answer (hyper's servers, the fuzz
//! target) gets the fields in the response's map first, with [`RawFields::into_map`].
//!
//! What is kept so is decided where the head is parsed ([`super::direct`]): no hop-by-hop
//! field, no `Location` or `Content-Location` (the proxy may rewrite those), not both
//! `Transfer-Encoding` and `Content-Length`. This module must not parse or judge a head:
//! `httparse` read it, and checks names and values with the same rules as `http`'s types.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// What the writer of an answer needs to know of a kept field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Content-Length`: left out when the writer frames the body itself.
    Length,
    /// `Date`: the writer then adds none.
    Date,
    /// Any other.
    Other,
}

/// One kept field: where its name and value are in the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawField {
    /// The name's first byte.
    pub name_from: u32,
    /// Just past the name.
    pub name_to: u32,
    /// The value's first byte (past the colon and any whitespace).
    pub value_from: u32,
    /// Just past the value (trailing whitespace left out).
    pub value_to: u32,
    /// What the writer needs to know of it.
    pub kind: Kind,
}

/// An answer's fields as the upstream wrote them, in its order, and the `Via` the proxy
/// adds.
pub struct RawFields {
    /// The answer's head, shared by every field.
    head: Bytes,
    /// The kept fields.
    fields: Vec<RawField>,
    /// The `Via` the proxy adds, once set (small: the body holding this is moved a few
    /// times per request).
    via: Option<&'static str>,
}

impl std::fmt::Debug for RawFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Field values may be anything the app sent (cookies): only their number shows.
        f.debug_struct("RawFields")
            .field("fields", &self.fields.len())
            .finish_non_exhaustive()
    }
}

impl RawFields {
    /// The `fields` of `head` (places that must lie in it, as the parser found them).
    pub(crate) fn new(head: Bytes, fields: Vec<RawField>) -> RawFields {
        RawFields {
            head,
            fields,
            via: None,
        }
    }

    /// Sets the `Via` the proxy adds.
    pub(crate) fn set_via(&mut self, via: &'static str) {
        self.via = Some(via);
    }

    /// How many bytes [`RawFields::write`] writes at most.
    pub fn written_len(&self) -> usize {
        self.head.len() + self.via.as_ref().map_or(0, |via| via.len() + 7)
    }

    /// The bytes of `from..to` in the head (empty if the places were wrong).
    fn bytes(&self, from: u32, to: u32) -> &[u8] {
        self.head
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }

    /// Writes each field as a `name: value` line (as the upstream wrote it), leaving out
    /// `Content-Length` unless `with_length`; then the `Via`. Returns whether a `Date` was
    /// among them.
    pub fn write(&self, out: &mut Vec<u8>, with_length: bool) -> bool {
        let mut dated = false;
        for field in &self.fields {
            match field.kind {
                Kind::Length if !with_length => continue,
                Kind::Date => dated = true,
                _ => {}
            }
            out.extend_from_slice(self.bytes(field.name_from, field.value_to));
            out.extend_from_slice(b"\r\n");
        }
        if let Some(via) = &self.via {
            out.extend_from_slice(b"via: ");
            out.extend_from_slice(via.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        dated
    }

    /// Puts every field (then the `Via`) in `headers`, the values sharing the head's bytes.
    /// `Err` names a field `http`'s types refuse, which the parser's checks rule out.
    pub fn into_map(self, headers: &mut HeaderMap) -> Result<(), String> {
        headers.reserve(self.fields.len() + 1);
        for field in &self.fields {
            let name = self.bytes(field.name_from, field.name_to);
            let name = HeaderName::from_bytes(name)
                .map_err(|_| format!("bad field name {:?}", String::from_utf8_lossy(name)))?;
            let range = field.value_from as usize..field.value_to as usize;
            let value = match self.head.get(range.clone()) {
                Some(_) => self.head.slice(range),
                None => Bytes::new(),
            };
            let value = HeaderValue::from_maybe_shared(value)
                .map_err(|_| format!("bad value for {name}"))?;
            headers.append(name, value);
        }
        if let Some(via) = self.via {
            headers.append(http::header::VIA, HeaderValue::from_static(via));
        }
        Ok(())
    }
}

/// What a field's name is to the proxy, read from its bytes in any case (without making a
/// [`HeaderName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    /// `Content-Length`.
    Length,
    /// `Date`.
    Date,
    /// `Location` or `Content-Location`.
    Location,
    /// `Connection`.
    Connection,
    /// `Transfer-Encoding`.
    TransferEncoding,
    /// Another hop-by-hop field (`Keep-Alive`, `Upgrade`, `TE`...).
    HopByHop,
    /// Any other.
    Other,
}

/// What `name` is (names longer than the longest known one are [`Name::Other`]).
pub(crate) fn name_of(name: &[u8]) -> Name {
    let mut lower = [0u8; 19];
    let Some(room) = lower.get_mut(..name.len()) else {
        return Name::Other;
    };
    for (to, from) in room.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    match &*room {
        b"content-length" => Name::Length,
        b"date" => Name::Date,
        b"location" | b"content-location" => Name::Location,
        b"connection" => Name::Connection,
        b"transfer-encoding" => Name::TransferEncoding,
        // The same list as the header maps' (`remove_hop_by_hop`).
        _ if super::headers::hop_by_hop_place(room).is_some() => Name::HopByHop,
        _ => Name::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_known_in_any_case_and_the_hop_by_hop_list_is_the_proxy_s() {
        assert_eq!(name_of(b"Content-Length"), Name::Length);
        assert_eq!(name_of(b"DATE"), Name::Date);
        assert_eq!(name_of(b"content-location"), Name::Location);
        assert_eq!(name_of(b"Location"), Name::Location);
        assert_eq!(name_of(b"Transfer-Encoding"), Name::TransferEncoding);
        assert_eq!(name_of(b"connection"), Name::Connection);
        assert_eq!(name_of(b"X-Content-Length"), Name::Other);
        assert_eq!(name_of(b"proxy-authorization-x"), Name::Other);
        assert_eq!(name_of(b""), Name::Other);
        // The same hop-by-hop names as the map path removes.
        let mut headers = HeaderMap::new();
        for name in [
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
        ] {
            assert_eq!(name_of(name.to_uppercase().as_bytes()), Name::HopByHop);
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static("x"));
        }
        super::super::remove_hop_by_hop(&mut headers);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn fields_are_written_as_sent_and_put_in_a_map_alike() {
        let head = Bytes::from_static(
            b"HTTP/1.1 200 OK\r\nContent-Type:  text/plain\r\nContent-Length: 5\r\nDate: x\r\nX-Empty:\r\n\r\n",
        );
        let text = std::str::from_utf8(&head).expect("text");
        let place = |name: &str, value: &str, kind: Kind| {
            let name_from = text.find(&format!("\n{name}:")).expect("field") + 1;
            let name_to = name_from + name.len();
            let value_from = if value.is_empty() {
                name_to + 1
            } else {
                name_to + text[name_to..].find(value).expect("value")
            };
            RawField {
                name_from: name_from as u32,
                name_to: name_to as u32,
                value_from: value_from as u32,
                value_to: (value_from + value.len()) as u32,
                kind,
            }
        };
        let fields = vec![
            place("Content-Type", "text/plain", Kind::Other),
            place("Content-Length", "5", Kind::Length),
            place("Date", "x", Kind::Date),
            place("X-Empty", "", Kind::Other),
        ];
        let mut raw = RawFields::new(head, fields);
        raw.set_via("1.1 paastis");

        let mut out = Vec::new();
        assert!(raw.write(&mut out, false));
        assert_eq!(
            String::from_utf8(out).expect("text"),
            "Content-Type:  text/plain\r\nDate: x\r\nX-Empty:\r\nvia: 1.1 paastis\r\n"
        );
        let mut out = Vec::new();
        raw.write(&mut out, true);
        assert!(
            String::from_utf8(out)
                .expect("text")
                .contains("Content-Length: 5\r\n")
        );
        assert!(format!("{raw:?}").contains("fields: 4"));

        let mut headers = HeaderMap::new();
        raw.into_map(&mut headers).expect("valid");
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["date"], "x");
        assert_eq!(headers["x-empty"], "");
        assert_eq!(headers["via"], "1.1 paastis");
        assert_eq!(headers.len(), 5);
    }
}
