//! A client's request head as the proxy's own HTTP/1.1 server reads it
//! (`paastis::fuzzing::proxy::requests::read_head`): whole or not yet, for this server or
//! handed to hyper's.
//!
//! Checks: nothing panics; a head read is within the bytes given and ends with its empty
//! line; a request this server takes is HTTP/1.1 with no body (no `Transfer-Encoding`, a
//! `Content-Length` of 0 if any), no upgrade, no `Expect`, not `CONNECT`, and at most 100
//! headers; `close` is set exactly when `Connection` names `close`; the bytes after a head
//! read alone read the same head again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paastis::fuzzing::proxy::requests::{Read, read_head};

fuzz_target!(|data: &[u8]| {
    let Read::Request {
        request,
        length,
        close,
    } = read_head(data)
    else {
        return;
    };
    assert!(length <= data.len());
    assert!(data[..length].ends_with(b"\n"));
    assert_eq!(request.version(), http::Version::HTTP_11);
    assert_ne!(request.method(), http::Method::CONNECT);
    let headers = request.headers();
    assert!(headers.len() <= 100);
    assert!(!headers.contains_key(http::header::TRANSFER_ENCODING));
    assert!(!headers.contains_key(http::header::UPGRADE));
    assert!(!headers.contains_key(http::header::EXPECT));
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        assert_eq!(value.as_bytes().trim_ascii(), b"0");
    }
    let named = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|value| {
            value
                .as_bytes()
                .split(|&byte| byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
        });
    assert_eq!(close, named);
    // The same head alone reads the same.
    let Read::Request {
        request: again,
        length: again_length,
        ..
    } = read_head(&data[..length])
    else {
        panic!("the head alone is not read again");
    };
    assert_eq!(again_length, length);
    assert_eq!(again.uri(), request.uri());
    assert_eq!(again.headers(), request.headers());
});
