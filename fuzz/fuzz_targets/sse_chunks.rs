//! Any bytes as an upstream's event stream: SSE framing (eventsource-stream, as the client uses
//! it) and each `data:` payload through the chunk decoder.
#![no_main]
use futures::StreamExt;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let bytes = futures::stream::iter(vec![Ok::<_, std::io::Error>(data.to_vec())]);
    let mut events = eventsource_stream::Eventsource::eventsource(bytes);
    futures::executor::block_on(async {
        while let Some(e) = events.next().await {
            if let Ok(e) = e {
                let _ = understudy_openai::decode_chunk(e.data.trim());
            }
        }
    });
});
