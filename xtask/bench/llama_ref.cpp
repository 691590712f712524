// What llama-bench's pp512 and tg128 measure, on llama.h alone: one 512-token batch decode,
// then 128 single-token decodes, each on a cleared cache after a warm-up. The prompt is the
// same text `understudy bench` uses. Prints one JSON object.
//
// usage: llama-ref MODEL.gguf THREADS
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf THREADS\n", argv[0]);
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
