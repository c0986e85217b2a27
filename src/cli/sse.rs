//! Server-Sent Events as the admin API's live event stream sends them: a parser fed with
//! the body's chunks as they arrive, giving each complete message (comments, such as
//! heartbeats, are skipped).

/// One message of the stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its `id:`, if any.
    pub id: Option<String>,
    /// Its `event:` (`None`: a plain message, an event of the history).
    pub event: Option<String>,
    /// Its `data:` lines, joined by newlines.
    pub data: String,
}

/// Cuts a byte stream into messages.
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not complete yet.
    partial: Vec<u8>,
    /// The message being read.
    current: Message,
    /// Whether the message being read has a field yet.
    started: bool,
}

impl Parser {
    /// Reads a chunk; the messages it completes, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Message> {
        let mut messages = Vec::new();
        self.partial.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = &self.partial[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line).into_owned();
            start += end + 1;
            if let Some(message) = self.line(&line) {
                messages.push(message);
            }
        }
        self.partial.drain(..start);
        messages
    }

    fn line(&mut self, line: &str) -> Option<Message> {
        if line.is_empty() {
            if !self.started {
                return None;
            }
            self.started = false;
            return Some(std::mem::take(&mut self.current));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.current.id = Some(value.to_owned()),
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                if self.started && !self.current.data.is_empty() {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
            }
            // `retry:` and unknown fields: nothing to keep.
            _ => return None,
        }
        self.started = true;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_wherever_the_chunks_end() {
        let stream = b"retry: 2000\n: following\n\nid: 7\ndata: {\"a\":1}\n\n: heartbeat\n\n\
                       id: 8\r\ndata: x\r\ndata: y\r\n\r\nevent: error\ndata: {\"error\":{}}\n\n";
        let whole = Parser::default().feed(stream);
        for size in 1..stream.len() {
            let mut parser = Parser::default();
            let cut: Vec<Message> = stream
                .chunks(size)
                .flat_map(|chunk| parser.feed(chunk))
                .collect();
            assert_eq!(cut, whole, "chunks of {size}");
        }
        assert_eq!(
            whole,
            [
                Message {
                    id: Some("7".into()),
                    event: None,
                    data: "{\"a\":1}".into()
                },
                Message {
                    id: Some("8".into()),
                    event: None,
                    data: "x\ny".into()
                },
                Message {
                    id: None,
                    event: Some("error".into()),
                    data: "{\"error\":{}}".into()
                },
            ]
        );
    }
}
