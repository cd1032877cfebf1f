# clusterd's model commands as a user runs them: synth, model info, tokenize, run
# (greedy, seeded, JSON), and 1,000 corrupted copies of a model that must each get a
# clear error or a report, never a crash. Needs no root and no network.
source "$(dirname "$0")/lib.sh"

M="$WORK/tiny.gguf"
"$CLUSTERD" model synth --arch llama --n-embd 64 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 128 --vocab 300 \
  --type q8_0 -o "$M" 2> "$WORK/synth.err" || fail "model synth failed: $(cat "$WORK/synth.err")"
grep -q "RANDOM weights" "$WORK/synth.err" || fail "synth does not say the weights are random"
info=$("$CLUSTERD" model info "$M" --json) || fail "model info failed"
[ "$(jq -r '"\(.architecture) \(.n_layer) \(.n_vocab) \(.tensor_types.q8_0)"' <<< "$info")" = "llama 2 300 16" ] ||
  fail "model info reports the wrong model: $info"
"$CLUSTERD" model info "$M" | grep -q "KV cache" || fail "model info has no memory line"
ok "model synth writes a model that model info describes"

ids=$("$CLUSTERD" tokenize --model "$M" "hi") || fail "tokenize failed"
[ "$(jq length <<< "$ids")" -ge 2 ] && [ "$(jq '.[0]' <<< "$ids")" = 1 ] || fail "tokenize: $ids (BOS first expected)"
[ "$("$CLUSTERD" tokenize --model "$M" --no-bos "hi" | jq '.[0]')" != 1 ] || fail "--no-bos still adds BOS"
ok "tokenize prints ids with and without BOS"

a=$("$CLUSTERD" run -m "$M" -p "hello" -n 12 --temp 0 --json) || fail "run failed"
b=$("$CLUSTERD" run -m "$M" -p "hello" -n 12 --temp 0 --json --threads 1)
[ "$(jq -c .tokens <<< "$a")" = "$(jq -c .tokens <<< "$b")" ] || fail "greedy differs with 1 and 2 threads"
[ "$(jq '.tokens | length' <<< "$a")" = 12 ] || fail "run did not make 12 tokens: $a"
s1=$("$CLUSTERD" run -m "$M" -p "hello" -n 12 --temp 1 --seed 5 --json | jq -c .tokens)
s2=$("$CLUSTERD" run -m "$M" -p "hello" -n 12 --temp 1 --seed 5 --json | jq -c .tokens)
[ "$s1" = "$s2" ] || fail "the same seed gave different tokens"
jq -e '.timings.tokens_per_second > 0' <<< "$a" > /dev/null || fail "run --json has no timings"
ok "run: greedy is thread-count independent, seeds repeat, JSON has timings"

# CLUSTERD_MAX_ISA caps the kernel family; every family runs the model, and bench says
# which one it timed. An unknown value is ignored with a warning.
for isa in scalar avx2 avxvnni avx512; do
  out=$(CLUSTERD_MAX_ISA=$isa "$CLUSTERD" run -m "$M" -p "hello" -n 6 --temp 0 --json) ||
    fail "run with CLUSTERD_MAX_ISA=$isa failed"
  [ "$(jq '.tokens | length' <<< "$out")" = 6 ] || fail "CLUSTERD_MAX_ISA=$isa: $out"
done
bench=$(CLUSTERD_MAX_ISA=scalar "$CLUSTERD" bench -m "$M" -p 4 -n 4 --reps 1 --threads 1) || fail "bench failed"
grep -q "file layout .*; scalar kernels" <<< "$bench" || fail "bench capped at scalar does not say so: $bench"
if grep -q avx2 /proc/cpuinfo; then
  bench=$(CLUSTERD_MAX_ISA=avx2 "$CLUSTERD" bench -m "$M" -p 4 -n 4 --reps 1 --threads 1)
  grep -q "packed .*(AVX2 kernels)" <<< "$bench" || fail "bench capped at AVX2 does not pack with AVX2 kernels: $bench"
fi
if grep -qw avx_vnni /proc/cpuinfo; then
  bench=$(CLUSTERD_MAX_ISA=avxvnni "$CLUSTERD" bench -m "$M" -p 4 -n 4 --reps 1 --threads 1)
  grep -q "packed .*(AVX2 with AVX-VNNI kernels)" <<< "$bench" ||
    fail "bench capped at AVX-VNNI does not pack with AVX-VNNI kernels: $bench"
fi
err=$(CLUSTERD_MAX_ISA=sse9 "$CLUSTERD" run -m "$M" -p "hello" -n 2 --temp 0 2>&1 >/dev/null) || fail "an unknown ISA cap stopped run"
grep -q "ignoring CLUSTERD_MAX_ISA=sse9" <<< "$err" || fail "no warning for an unknown ISA cap: '$err'"
ok "CLUSTERD_MAX_ISA: scalar, AVX2, AVX-VNNI and AVX-512 paths run; bench names the kernels; unknown values warned about"

set +e
err=$("$CLUSTERD" model info "$WORK/missing.gguf" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "missing.gguf" <<< "$err" || fail "a missing file: exit $rc, '$err'"
head -c 1000 "$M" > "$WORK/cut.gguf"
err=$("$CLUSTERD" model info "$WORK/cut.gguf" 2>&1); rc=$?
[ "$rc" = 1 ] && grep -q "byte" <<< "$err" || fail "a truncated file: exit $rc, '$err'"
size=$(stat -c %s "$M")
crashes=0
for i in $(seq 1 1000); do
  cp "$M" "$WORK/bad.gguf"
  for _ in 1 2 3; do
    printf "\\x$(printf %02x $((RANDOM % 256)))" |
      dd of="$WORK/bad.gguf" bs=1 seek=$(((RANDOM * 32768 + RANDOM) % size)) conv=notrunc status=none
  done
  [ $((i % 10)) = 0 ] && truncate -s $(((RANDOM * 32768 + RANDOM) % size)) "$WORK/bad.gguf"
  "$CLUSTERD" model info "$WORK/bad.gguf" > /dev/null 2> "$WORK/bad.err"
  rc=$?
  if [ "$rc" -ge 128 ]; then
    crashes=$((crashes + 1))
    cp "$WORK/bad.gguf" "/tmp/clusterd-crash-$i.gguf"
  fi
done

[ "$crashes" = 0 ] || fail "$crashes of 1,000 corrupted files crashed 'model info' (kept in /tmp/clusterd-crash-*.gguf)"
ok "1,000 corrupted copies: every one a report or a clear error, no crash"

finish
