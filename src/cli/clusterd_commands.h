// The subcommands of `clusterd` besides `start` and `keygen`: model info / synth,
// tokenize, run and bench. Each add_* registers its subcommand and sets `run` to the
// function that executes it after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace clusterd::cli {

using Runner = std::function<int()>;

void add_model_commands(CLI::App& app, Runner& run);
void add_tokenize_command(CLI::App& app, Runner& run);
void add_run_command(CLI::App& app, Runner& run);
void add_bench_command(CLI::App& app, Runner& run);
// `clusterd bench collective`, under the bench subcommand.
void add_bench_collective_command(CLI::App& bench, Runner& run);
// `clusterd bench tp`, under the bench subcommand.
void add_bench_tp_command(CLI::App& bench, Runner& run);

}  // namespace clusterd::cli
