// clusterd bench: prompt processing and generation speed on this node, next to the
// memory-bandwidth bound for generation (bytes of weights read per token divided by the
// read bandwidth this command measures over a buffer of the model's size).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>

#include "clusterd/common/target_clones.h"
#include "clusterd/engine/kernels_avx512.h"
#include "clusterd/engine/kernels_neon.h"
#include "clusterd/engine/model.h"
#include "clusterd/engine/packed.h"
#include "clusterd/engine/quant.h"
#include "clusterd/engine/transformer.h"
#include "clusterd_commands.h"

namespace clusterd::cli {

namespace {

struct BenchOptions {
  std::string model;
  int prompt = 128;
  int gen = 64;
  int depth = 0;  // positions already in the context when pp and tg start
  std::string threads = "1,2";
  int reps = 3;
  bool no_pack = false;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Sum of words [begin, end), read 256 bytes at a time in the CPU's widest vectors (one
// core read 31-35 GB/s with 8-byte loads, 38-40 with 64-byte ones, so narrow loads
// would understate the bound), each line prefetched 4.5 KB ahead as the packed
// kernels do (without it one core read 3-4% less than the Q6_K kernel streamed, whose
// decode then measured 101-104% of its "bound").
using Words8 = uint64_t __attribute__((vector_size(64)));
CLUSTERD_TARGET_CLONES uint64_t sum_words(const uint64_t* buffer, int64_t begin, int64_t end) {
  Words8 a = {}, b = {}, c = {}, d = {};
  int64_t i = begin;
  for (; i + 32 <= end; i += 32) {
    for (int line = 0; line < 4; ++line) __builtin_prefetch(buffer + i + 576 + 8 * line, 0, 0);
    Words8 w[4];
    std::memcpy(w, buffer + i, sizeof w);
    a += w[0], b += w[1], c += w[2], d += w[3];
  }
  uint64_t sum = 0;
  for (; i < end; ++i) sum += buffer[i];
  const Words8 total = a + b + c + d;
  for (int k = 0; k < 8; ++k) sum += total[k];
  return sum;
}

// Bytes per second reading `buffer` with every thread of `pool` (best of 3 passes).
double read_bandwidth(const uint64_t* buffer, size_t words, ThreadPool& pool) {
  double best = 0;
  std::vector<uint64_t> sums(pool.size());
  for (int pass = 0; pass < 3; ++pass) {
    auto t = std::chrono::steady_clock::now();
    pool.parallel_for(static_cast<int64_t>(words), 4096,
                      [&](int thread, int64_t begin, int64_t end) { sums[thread] += sum_words(buffer, begin, end); });
    best = std::max(best, words * 8.0 / seconds_since(t));
  }
  volatile uint64_t sink = sums[0];  // keep the reads
  (void)sink;
  return best;
}

int bench(const BenchOptions& o) {
  auto model = Model::open(o.model);
  if (!model.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", model.status().message().c_str());
    return 1;
  }
  const ModelParams& p = (*model)->params;
  auto weights = load_weights(*(*model)->file, p, Shard::whole(p), !o.no_pack);
  if (!weights.is_ok()) {
    std::fprintf(stderr, "clusterd: %s\n", weights.status().message().c_str());
    return 1;
  }
  std::vector<int> thread_counts;
  std::stringstream ss(o.threads);
  for (std::string item; std::getline(ss, item, ',');) thread_counts.push_back(std::max(1, std::atoi(item.c_str())));
  // Generation reads every weight once per token (the embedding is one row).
  const double bytes_per_token = static_cast<double>(weights->bytes());
  // The buffer is held like packed weights (huge pages where the kernel gives them),
  // so that the bound does not count their TLB savings as kernel speed.
  const size_t words = static_cast<size_t>(bytes_per_token / 8) + 1;
  WeightMemory memory = allocate_weight_memory(words * 8);
  auto* buffer = reinterpret_cast<uint64_t*>(memory.get());
  for (size_t i = 0; i < words; ++i) buffer[i] = i;  // touch every page

  std::printf("model: %s (%s, %d layers, n_embd %d; %.2f GiB of weights read per token)\n", o.model.c_str(),
              p.arch_name.c_str(), p.n_layer, p.n_embd, bytes_per_token / (1 << 30));
#if defined(CLUSTERD_HAVE_NEON_KERNELS)
  // The packed products use SDOT where the CPU has it; the row products where the build
  // targets it.
  const char* kernels = !packed_neon_kernels_available() ? "NEON"
                        : neon_kernels_use_dotprod()     ? "NEON with SDOT"
                                                         : "NEON, SDOT in packed products";
#else
  const char* kernels = cpu_has_avx512_vnni() ? "AVX-512 VNNI"
                        : cpu_has_avx_vnni()  ? "AVX2 with AVX-VNNI"
                        : cpu_has_avx2()      ? "AVX2"
                                              : "scalar";
#endif
  std::string packed_types;
  for (TensorType type :
       {TensorType::kQ8_0, TensorType::kQ4_0, TensorType::kQ4_K, TensorType::kQ5_K, TensorType::kQ6_K}) {
    if (packing_supported(type))
      packed_types += (packed_types.empty() ? "" : "/") + std::string(tensor_type_name(type));
  }
  if (weights->packed_bytes) {
    std::printf("weights: %s matrices packed in pairs of 16-row groups (%s kernels)\n", packed_types.c_str(), kernels);
  } else {
    std::printf("weights: file layout (%s; %s kernels)\n",
                o.no_pack ? "--no-pack" : "no packed kernels for these types on this CPU", kernels);
  }
  std::printf("%-8s %12s %12s %14s %16s %10s\n", "threads", "pp tok/s", "tg tok/s", "read GB/s", "tg bound tok/s",
              "tg/bound");
  LocalCollective local;
  for (int threads : thread_counts) {
    Transformer tf(*weights, local,
                   TransformerOptions{o.depth + std::max(o.prompt, o.gen) + 8, 1, TensorType::kF16, threads});
    ThreadPool pool(threads);
    // Per generated token: every weight, and the keys and values of its context.
    const double tg_bytes =
        bytes_per_token + static_cast<double>(tf.kv_cache().bytes_per_position()) * (o.depth + (o.gen + 1) / 2.0);
    // The context (untimed, in chunks): pp and tg then run at positions depth.., each
    // repetition writing over the last one's positions, so that the context stays.
    for (int from = 0; from < o.depth; from += 512) {
      std::vector<BatchToken> chunk;
      for (int i = from; i < std::min(o.depth, from + 512); ++i)
        chunk.push_back({(i * 4099 + 5) % p.n_vocab, i, 0, false});
      std::vector<float> none;
      if (Status s = tf.forward(chunk, none); !s.is_ok()) {
        std::fprintf(stderr, "clusterd: %s\n", s.message().c_str());
        return 1;
      }
    }
    // The bandwidth is measured right after each generation run, and the ratio taken
    // per repetition, so that the machine's drift does not skew tg/bound.
    std::vector<double> pp, tg, bandwidths, ratios;
    for (int rep = 0; rep < o.reps; ++rep) {
      std::vector<BatchToken> batch;
      for (int i = 0; i < o.prompt; ++i) {
        batch.push_back({(i * 7919 + 13) % p.n_vocab, o.depth + i, 0, i == o.prompt - 1});
      }
      std::vector<float> logits;
      auto t = std::chrono::steady_clock::now();
      if (Status s = tf.forward(batch, logits); !s.is_ok()) {
        std::fprintf(stderr, "clusterd: %s\n", s.message().c_str());
        return 1;
      }
      pp.push_back(o.prompt / seconds_since(t));
      t = std::chrono::steady_clock::now();
      for (int i = 0; i < o.gen; ++i) {
        std::vector<BatchToken> step = {{(i * 31 + 7) % p.n_vocab, o.depth + i, 0, true}};
        logits.clear();
        if (Status s = tf.forward(step, logits); !s.is_ok()) return 1;
      }
      tg.push_back(o.gen / seconds_since(t));
      bandwidths.push_back(read_bandwidth(buffer, words, pool));
      ratios.push_back(tg.back() / (bandwidths.back() / tg_bytes));
    }
    const double bandwidth = median(bandwidths);
    std::printf("%-8d %12.1f %12.1f %14.2f %16.1f %9.0f%%\n", threads, median(pp), median(tg), bandwidth / 1e9,
                bandwidth / tg_bytes, 100 * median(ratios));
  }
  std::printf(
      "(medians of %d repetitions; pp%d = %d prompt tokens in one batch, tg%d = %d tokens one at a time; tg/bound is\n"
      " the median of each repetition's tg over the bound from the bandwidth measured right after it)\n",
      o.reps, o.prompt, o.prompt, o.gen, o.gen);
  if (o.depth > 0) {
    std::printf(" (both after a context of %d tokens; the bound also counts the KV cache each token reads)\n", o.depth);
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Runner& run) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "prompt and generation speed against the memory-bandwidth bound");
  cmd->add_option("--model,-m", o->model, "GGUF model file (required unless a subcommand is given)");
  cmd->add_option("-p,--prompt-tokens", o->prompt, "prompt tokens (pp)")->capture_default_str();
  cmd->add_option("-n,--gen-tokens", o->gen, "generated tokens (tg)")->capture_default_str();
  cmd->add_option("-d,--depth", o->depth, "tokens already in the context when pp and tg start")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "comma-separated thread counts")->capture_default_str();
  cmd->add_option("--reps", o->reps, "repetitions")->capture_default_str();
  cmd->add_flag("--no-pack", o->no_pack, "keep Q8_0/Q4_0/Q4_K/Q5_K/Q6_K weights in the file layout (for comparison)");
  add_bench_collective_command(*cmd, run);
  add_bench_tp_command(*cmd, run);
  cmd->callback([&run, o, cmd] {
    if (!cmd->get_subcommands().empty()) return;  // bench collective
    if (o->model.empty()) throw CLI::RequiredError("--model");
    run = [o] { return bench(*o); };
  });
}

}  // namespace clusterd::cli
