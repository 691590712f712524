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

/// Where the answer text currently is, for [`ThinkSplit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but whitespace yet: a `<think>` here opens the reasoning.
    Start,
    Thinking,
    /// Right after `</think>`: the blank line models put before the answer is dropped.
    Closed,
    Answer,
}

/// Separates a reasoning model's thinking (`<think>` … `</think>` at the start of its answer,
/// or everything up to `</think>` when the prompt itself opened the block, as DeepSeek-R1's
/// template does) from the answer, as text streams in. Tags split across pieces are held back
/// until they can be told apart; a `<think>` after the answer began is plain text.
#[derive(Debug)]
pub struct ThinkSplit {
    phase: Phase,
    held: String,
}

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

impl ThinkSplit {
    /// `prompt` is the rendered prompt (its end says whether the block is already open);
    /// a continuation (`prefill`) is always answer text.
    pub fn new(prompt: &str, continuation: bool) -> ThinkSplit {
        let phase = match () {
            () if continuation => Phase::Answer,
            () if prompt.trim_end().ends_with(OPEN) => Phase::Thinking,
            () => Phase::Start,
        };
        ThinkSplit { phase, held: String::new() }
    }

    /// Adds text; returns (reasoning, answer) that is safe to emit now.
    pub fn push(&mut self, text: &str) -> (String, String) {
        self.held.push_str(text);
        let (mut reasoning, mut answer) = (String::new(), String::new());
        loop {
            match self.phase {
                Phase::Start => {
                    let body = self.held.trim_start();
                    if let Some(rest) = body.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.phase = Phase::Thinking;
                    } else if body.is_empty() || OPEN.starts_with(body) {
                        return (reasoning, answer); // whitespace or a tag still arriving
                    } else {
                        self.phase = Phase::Answer;
                    }
                }
                Phase::Thinking => match self.held.find(CLOSE) {
                    Some(at) => {
                        reasoning.push_str(&self.held[..at]);
                        self.held.drain(..at + CLOSE.len());
                        self.phase = Phase::Closed;
                    }
                    None => {
                        let keep = (1..CLOSE.len()).rev().find(|&n| self.held.ends_with(&CLOSE[..n])).unwrap_or(0);
                        let cut = self.held.len() - keep;
                        reasoning.push_str(&self.held[..cut]);
                        self.held.drain(..cut);
                        return (reasoning, answer);
                    }
                },
                Phase::Closed => {
                    self.held = self.held.trim_start().to_string();
                    if self.held.is_empty() {
                        return (reasoning, answer);
                    }
                    self.phase = Phase::Answer;
                }
                Phase::Answer => {
                    answer.push_str(&self.held);
                    self.held.clear();
                    return (reasoning, answer);
                }
            }
        }
    }

    /// What is held at the end: unfinished thinking stays thinking; anything else is answer.
    pub fn finish(&mut self) -> (String, String) {
        let rest = std::mem::take(&mut self.held);
        match self.phase {
            Phase::Thinking => (rest, String::new()),
            _ => (String::new(), rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` and returns (reasoning, answer) in full.
    fn split(prompt: &str, continuation: bool, pieces: &[&str]) -> (String, String) {
        let mut t = ThinkSplit::new(prompt, continuation);
        let (mut r, mut a) = (String::new(), String::new());
        for p in pieces {
            let (x, y) = t.push(p);
            r.push_str(&x);
            a.push_str(&y);
        }
        let (x, y) = t.finish();
        (r + &x, a + &y)
    }

    #[test]
    fn thinking_is_split_from_the_answer() {
        let qwen = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        let r1 = "<｜User｜>Hi<｜Assistant｜><think>\n";
        // (name, prompt, continuation, pieces, (reasoning, answer))
        type Case<'a> = (&'a str, &'a str, bool, &'a [&'a str], (&'a str, &'a str));
        let cases: &[Case<'_>] = &[
            ("a plain answer", qwen, false, &["Hello", " there."], ("", "Hello there.")),
            ("qwen3: a think block first", qwen, false, &["<think>\nThe user greets.\n</think>\n\nHello!"], ("\nThe user greets.\n", "Hello!")),
            ("tags split across pieces", qwen, false, &["\n<thi", "nk>plan", " more</th", "ink>", "\n\nDone."], ("plan more", "Done.")),
            ("the prompt opened the block (DeepSeek-R1)", r1, false, &["Let me see.", "</think>\n\n", "42"], ("Let me see.", "42")),
            ("a <think> after the answer began is text", qwen, false, &["Use the <think> tag."], ("", "Use the <think> tag.")),
            ("a continuation is always answer", qwen, true, &["<think>not thinking</think>"], ("", "<think>not thinking</think>")),
            ("cut while thinking: it stays thinking", qwen, false, &["<think>half a thou"], ("half a thou", "")),
            ("a lone < at the start is answer once it cannot be a tag", qwen, false, &["<", "3 you"], ("", "<3 you")),
            ("empty thinking (enable_thinking=false output)", qwen, false, &["<think>\n\n</think>\n\nHi"], ("\n\n", "Hi")),
        ];
        for (name, prompt, cont, pieces, (reasoning, answer)) in cases {
            assert_eq!(split(prompt, *cont, pieces), (reasoning.to_string(), answer.to_string()), "{name}");
        }
    }

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
