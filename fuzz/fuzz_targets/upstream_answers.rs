//! An upstream's HTTP/1.1 answer as the proxy reads it for a bodiless request
//! (`paastis::fuzzing::proxy::read_answer`: the head parsed, interim answers skipped, the
//! body decoded by its framing). The first byte picks the request's method (`H`: `HEAD`,
//! `D`: `DELETE`, anything else: `GET`); the rest is what the upstream sends:
//!
//! ```text
//! GHTTP/1.1 200 OK
//! Transfer-Encoding: chunked
//!
//! 5
//! hello
//! 0
//!
//! ```
//!
//! Checks: nothing panics; an answer read is a final one (not 1xx); a body is never longer
//! than what was sent, nor than a `Content-Length` kept in the head; a `HEAD` answer, a 204
//! and a 304 have no body; a connection goes back to the pool only after a whole body
//! without error, and never when the upstream asked to close it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use paastis::fuzzing::proxy::read_answer;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, answer)) = data.split_first() else {
        return;
    };
    let method = match pick {
        b'H' => http::Method::HEAD,
        b'D' => http::Method::DELETE,
        _ => http::Method::GET,
    };
    let Ok(read) = read_answer(method.clone(), answer.to_vec()) else {
        return;
    };
    let status = read.head.status();
    assert!(!status.is_informational(), "{status}");
    assert!(read.body.len() <= answer.len());
    if method == http::Method::HEAD || status == 204 || status == 304 {
        assert!(read.body.is_empty());
    } else if let Some(length) = read
        .head
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .and_then(|value| value.trim().parse::<usize>().ok())
    {
        assert!(read.body.len() <= length, "{} > {length}", read.body.len());
    }
    if read.reused {
        assert!(read.body_error.is_none(), "{:?}", read.body_error);
        assert!(
            !asks_to_close(answer),
            "reused although the upstream asked to close"
        );
    }
});

/// Whether the final (not 1xx) head of `answer` has a `Connection` field naming `close`,
/// or one that is not text: read here with `httparse` alone, as the proxy drops
/// `Connection` from the head it keeps.
fn asks_to_close(mut answer: &[u8]) -> bool {
    loop {
        let mut fields = [httparse::EMPTY_HEADER; 100];
        let mut head = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(length)) = head.parse(answer) else {
            return false;
        };
        if head.code.is_some_and(|code| (100..200).contains(&code)) {
            answer = &answer[length..];
            continue;
        }
        return head
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case("connection"))
            .any(|field| {
                std::str::from_utf8(field.value).map_or(true, |value| {
                    value
                        .split(',')
                        .any(|token| token.trim().eq_ignore_ascii_case("close"))
                })
            });
    }
}
