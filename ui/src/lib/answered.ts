// Who wrote an answer and why, in words, from the router's typed data (never parsed from
// words): the same phrases as crates/alerts `answered_by` / `reason_words`.
import type { Because } from "../api/chat";

export function reasonWords(b: Because): string {
  const who = b.label;
  switch (b.reason) {
    case "timed_out":
      return `${who} timed out`;
    case "stalled":
      return `${who} stopped sending`;
    case "unreachable":
      return `${who} was unreachable`;
    case "server_error":
      return `${who} had a server error`;
    case "rate_limited":
      return `${who} was rate-limiting`;
    case "account_problem":
      return `${who} refused the account or key`;
    case "cut_off":
      return `${who} cut the answer off`;
    case "bad_stream":
      return `${who} sent a broken answer`;
    case "down":
      return `${who} is down`;
    case "no_key":
      return `${who} has no API key`;
    case "key_needed_for_host":
      return `${who} needs its key for a new host`;
    case "failed":
      return `${who} failed`;
  }
}

/** "Groq · llama-3.3-70b, because OpenAI timed out". */
export function answeredBy(label: string, model: string | null, because: Because | null | undefined): string {
  const by = [label, model].filter(Boolean).join(" · ");
  return because ? `${by}, because ${reasonWords(because)}` : by;
}
