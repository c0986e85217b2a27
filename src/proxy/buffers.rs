//! Read buffers kept for reuse on each proxy thread. A request's head and an upstream's
//! answer are read into a buffer taken here and given back when the exchange is over: a busy
//! connection then reads its next request into memory already allocated (no allocation and
//! free of 4 or 16 KiB per request), and a connection waiting for its next request still
//! holds no buffer. An open tunnel (WebSocket) likewise holds one only while bytes it read
//! are on their way out.
//!
//! A buffer given back may still be shared by the bytes of the exchange it served (a field
//! value, a body piece on its way out): it is handed out again only once nothing else holds
//! it. This module must not keep more than [`KEPT`] buffers per size on a thread, nor know
//! what the bytes are.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread and per size; a buffer given back past that is freed.
pub const KEPT: usize = 8;

/// What a buffer is for, and so its size (its value: its list among the kept ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A client's request head (grown while a head is longer).
    RequestHead,
    /// An upstream's answer: its head, then its body as it comes.
    Answer,
    /// One read of a tunnel's bytes, held until they are written to the other side.
    Tunnel,
}

impl Use {
    /// The room a buffer for this use starts with.
    pub const fn size(self) -> usize {
        match self {
            Use::RequestHead => 4096,
            Use::Answer => 16 * 1024,
            Use::Tunnel => 8192,
        }
    }
}

thread_local! {
    /// The buffers given back on this thread, by use; the last given back first.
    static KEPT_BUFFERS: RefCell<[Vec<BytesMut>; 3]> =
        const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// An empty buffer with room for at least `use_.size()` bytes: one given back on this
/// thread that nothing else holds any more, else a new one.
pub fn take(use_: Use) -> BytesMut {
    let size = use_.size();
    let kept = KEPT_BUFFERS.with_borrow_mut(|kept| {
        let kept = &mut kept[use_ as usize];
        // `try_reclaim` succeeds when the buffer's own room is enough, or when no other
        // handle shares its memory (all of it is then room again): bytes still held by the
        // exchange it served are never written over. The others wait for their turn.
        let free = kept
            .iter_mut()
            .rposition(|buffer| buffer.try_reclaim(size))?;
        // One that grew for an unusually long head is not kept at that size.
        Some(kept.swap_remove(free)).filter(|buffer| buffer.capacity() <= 2 * size)
    });
    kept.unwrap_or_else(|| BytesMut::with_capacity(size))
}

/// Room for the next read of `use_` in `buffer`: a kept buffer (see [`take`]) when it has
/// none, else at least `use_.size()` bytes more.
pub fn make_room(use_: Use, buffer: &mut BytesMut) {
    if buffer.capacity() == 0 {
        *buffer = take(use_);
    } else {
        buffer.reserve(use_.size());
    }
}

/// Gives `buffer` back for a later [`take`] of the same use on this thread. A buffer with
/// unread bytes, or none of its own room, is dropped.
pub fn give(use_: Use, buffer: BytesMut) {
    if !buffer.is_empty() || buffer.capacity() == 0 {
        return;
    }
    KEPT_BUFFERS.with_borrow_mut(|kept| {
        let kept = &mut kept[use_ as usize];
        if kept.len() < KEPT {
            kept.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_once_nothing_holds_its_bytes() {
        let mut buffer = take(Use::RequestHead);
        assert!(buffer.capacity() >= Use::RequestHead.size());
        buffer.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let address = buffer.as_ptr() as usize;
        let head = buffer.split().freeze();
        give(Use::RequestHead, buffer);
        // The head's bytes are still held: a take now must not hand that memory out.
        let other = take(Use::RequestHead);
        assert_ne!(other.as_ptr() as usize, address);
        assert_eq!(&head[..4], b"GET ");
        drop(other);
        // Once they are dropped, it is handed out again.
        drop(head);
        let again = take(Use::RequestHead);
        assert_eq!(
            again.as_ptr() as usize,
            address,
            "the same memory, from its start"
        );
        assert!(again.is_empty());
        assert!(again.capacity() >= Use::RequestHead.size());
    }

    #[test]
    fn at_most_kept_buffers_stay_and_the_uses_do_not_mix() {
        let buffers: Vec<BytesMut> = (0..KEPT + 3).map(|_| take(Use::Answer)).collect();
        for buffer in buffers {
            give(Use::Answer, buffer);
        }
        let kept = KEPT_BUFFERS.with_borrow(|kept| kept[Use::Answer as usize].len());
        assert_eq!(kept, KEPT);
        let head = take(Use::RequestHead);
        assert!(head.capacity() < Use::Answer.size());
        let kept_after = KEPT_BUFFERS.with_borrow(|kept| kept[Use::Answer as usize].len());
        assert_eq!(kept_after, KEPT);
    }

    #[test]
    fn a_buffer_with_unread_bytes_or_grown_too_far_is_not_kept() {
        let mut buffer = take(Use::RequestHead);
        buffer.extend_from_slice(b"partial");
        give(Use::RequestHead, buffer);
        assert_eq!(KEPT_BUFFERS.with_borrow(|kept| kept[0].len()), 0);

        let mut grown = BytesMut::with_capacity(4 * Use::RequestHead.size());
        grown.extend_from_slice(&[b'x'; 100]);
        drop(grown.split());
        give(Use::RequestHead, grown);
        assert_eq!(KEPT_BUFFERS.with_borrow(|kept| kept[0].len()), 1);
        // Taken out of the list, and not handed out at that size.
        let taken = take(Use::RequestHead);
        assert!(taken.capacity() < 2 * Use::RequestHead.size());
        assert_eq!(KEPT_BUFFERS.with_borrow(|kept| kept[0].len()), 0);
    }
}
