// What llama-bench's pp512 and tg128 measure, on llama.h alone: one 512-token batch decode,
// then 128 single-token decodes, each on a cleared cache after a warm-up. The prompt is the
// same text `understudy bench` uses. Prints one JSON object.
//
// usage: llama-ref MODEL.gguf THREADS
//        llama-ref MODEL.gguf THREADS conversation CONTEXT TOTAL REUSED
//
// The second form is the reference for the offline answer (`cargo xtask bench local`): a prompt
// of TOTAL tokens evaluated in 512-token batches in a CONTEXT-token context, as a plain llama.cpp
// program would, timed three ways: prompt tokens per second (after a warm-up, cache cleared);
// the first token from nothing loaded (load, context, prompt, greedy pick: what a failover
// without pre-warm costs at best); and the first token when the first REUSED tokens are already
// in the cache (what a pre-warmed failover costs at best).
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Filler text tokenized and cut to exactly n tokens (the content does not change the speed).
static std::vector<llama_token> filler(const llama_vocab * vocab, int n) {
    std::string text;
    std::vector<llama_token> tokens;
    while ((int) tokens.size() < n) {
        for (int i = 0; i < 64; i++) {
            text += "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report on renewable energy. ";
        }
        tokens.resize(text.size() + 8);
        tokens.resize(llama_tokenize(vocab, text.c_str(), (int) text.size(), tokens.data(), (int) tokens.size(), true, false));
    }
    tokens.resize(n);
    return tokens;
}

// Decodes tokens[from, to) in batches of at most 512, logits for the last one only.
static void decode_range(llama_context * ctx, const std::vector<llama_token> & tokens, int from, int to) {
    llama_batch batch = llama_batch_init(512, 0, 1);
    for (int start = from; start < to; start += 512) {
        const int end = start + 512 < to ? start + 512 : to;
        batch.n_tokens = 0;
        for (int i = start; i < end; i++) {
            const int j = batch.n_tokens++;
            batch.token[j] = tokens[i];
            batch.pos[j] = i;
            batch.n_seq_id[j] = 1;
            batch.seq_id[j][0] = 0;
            batch.logits[j] = i + 1 == to;
        }
        llama_decode(ctx, batch);
    }
    llama_synchronize(ctx);
    llama_batch_free(batch);
}

// The greedy pick from the last logits (what the offline answer's first token costs to sample).
static llama_token greedy(llama_context * ctx, const llama_vocab * vocab) {
    const float * logits = llama_get_logits_ith(ctx, -1);
    llama_token best = 0;
    for (llama_token t = 1; t < llama_vocab_n_tokens(vocab); t++) {
        if (logits[t] > logits[best]) {
            best = t;
        }
    }
    return best;
}

static int conversation(const char * path, int threads, int n_ctx, int total, int reused) {
    llama_model_params mp = llama_model_default_params();
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;

    // Cold: from nothing loaded to the first token.
    double t = now_s();
    llama_model * model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", path);
        return 1;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const std::vector<llama_token> tokens = filler(vocab, total);
    decode_range(ctx, tokens, 0, total);
    greedy(ctx, vocab);
    const double cold_ms = (now_s() - t) * 1000.0;

    // Prompt processing: the cache cleared, the whole prompt again.
    llama_memory_t mem = llama_get_memory(ctx);
    llama_memory_clear(mem, true);
    t = now_s();
    decode_range(ctx, tokens, 0, total);
    const double pp = total / (now_s() - t);

    // Pre-warmed: the first `reused` tokens in the cache, then the rest and the first token.
    llama_memory_clear(mem, true);
    decode_range(ctx, tokens, 0, reused);
    t = now_s();
    decode_range(ctx, tokens, reused, total);
    greedy(ctx, vocab);
    const double warm_ms = (now_s() - t) * 1000.0;

    printf("{\"threads\":%d,\"prompt_tokens\":%d,\"reused\":%d,\"prompt_tokens_per_s\":%.3f,\"cold_first_token_ms\":%.1f,\"warm_first_token_ms\":%.1f}\n",
           threads, total, reused, pp, cold_ms, warm_ms);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int main(int argc, char ** argv) {
    if (argc == 7 && std::string(argv[3]) == "conversation") {
        llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
        llama_backend_init();
        const int rc = conversation(argv[1], atoi(argv[2]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
        llama_backend_free();
        return rc;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf THREADS [conversation CONTEXT TOTAL REUSED]\n", argv[0]);
        return 2;
    }
    const int n_prompt = 512, n_gen = 128, threads = atoi(argv[2]);
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();

    double t = now_s();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const double load_ms = (now_s() - t) * 1000.0;

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_gen + 16;
    cp.n_batch = n_prompt;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);

    std::string text;
    for (int i = 0; i < 64; i++) {
        text += "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report on renewable energy. ";
    }
    std::vector<llama_token> tokens(text.size() + 8);
    int n = llama_tokenize(vocab, text.c_str(), (int) text.size(), tokens.data(), (int) tokens.size(), true, false);
    if (n < n_prompt) {
        fprintf(stderr, "only %d tokens\n", n);
        return 1;
    }
    tokens.resize(n_prompt);
    llama_memory_t mem = llama_get_memory(ctx);

    // pp512: warm-up, clear, then one timed batch.
    llama_decode(ctx, llama_batch_get_one(tokens.data(), 16));
    llama_synchronize(ctx);
    llama_memory_clear(mem, true);
    t = now_s();
    llama_decode(ctx, llama_batch_get_one(tokens.data(), n_prompt));
    llama_synchronize(ctx);
    const double pp = n_prompt / (now_s() - t);

    // tg128: warm-up, clear, then one token at a time.
    llama_memory_clear(mem, true);
    llama_decode(ctx, llama_batch_get_one(tokens.data(), 1));
    llama_synchronize(ctx);
    llama_memory_clear(mem, true);
    t = now_s();
    for (int i = 0; i < n_gen; i++) {
        llama_decode(ctx, llama_batch_get_one(&tokens[i], 1));
        llama_synchronize(ctx);
    }
    const double tg = n_gen / (now_s() - t);

    printf("{\"threads\":%d,\"load_ms\":%.0f,\"prompt_tokens_per_s\":%.3f,\"gen_tokens_per_s\":%.3f}\n", threads, load_ms, pp, tg);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
