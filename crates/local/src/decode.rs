//! Token pieces to text without ever splitting a UTF-8 character (a piece can end in the middle
//! of one: byte-fallback tokens carry single bytes of an emoji or CJK character), and with stop
//! strings held back until they can no longer match.

/// Accumulates token bytes and releases only complete characters.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds a piece's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"));
                    match e.error_len() {
                        // An incomplete character at the end: wait for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Invalid bytes (a model can emit any byte): replace, as a decoder would.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever remains at the end of generation (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Holds back text that might be the start of a stop string.
#[derive(Debug, Default)]
pub struct StopScan {
    stops: Vec<String>,
    held: String,
}

impl StopScan {
    pub fn new(stops: &[String]) -> StopScan {
        StopScan { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    /// Adds text; returns (text safe to emit, whether a stop string was hit).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).rev().filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|p| self.held.ends_with(p))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        (out, false)
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        for text in ["日本語", "🙂👍🏽", "naïve", "a\u{10FFFF}b"] {
            let bytes = text.as_bytes();
            let mut s = Utf8Stream::default();
            let mut out = String::new();
            for b in bytes {
                let piece = s.push(&[*b]);
                assert!(!piece.contains('\u{FFFD}'), "{text}: emitted a broken char");
                out.push_str(&piece);
            }
            out.push_str(&s.finish());
            assert_eq!(out, text);
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_decoding_goes_on() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(s.push(b"\xe6\x97"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }

    #[test]
    fn stop_strings_are_held_back_then_cut() {
        let mut st = StopScan::new(&["</answer>".into(), "\n\nUser:".into()]);
        assert_eq!(st.push("Hello </an"), ("Hello ".into(), false));
        assert_eq!(st.push("swer> tail"), ("".into(), true));
        let mut st = StopScan::new(&["STOP".into()]);
        assert_eq!(st.push("a ST"), ("a ".into(), false));
        assert_eq!(st.push("ill going"), ("STill going".into(), false));
        assert_eq!(st.finish(), "");
        let mut st = StopScan::new(&[]);
        assert_eq!(st.push("anything"), ("anything".into(), false));
    }
}
