#!/usr/bin/env bash
# Compiles every source file under src/ for AArch64 with the flags the build gives it,
# warnings as errors, so that an x86 machine notices code that would not build on ARM
# (the NEON test programs build only the kernels).
#   aarch64_sources.sh CROSS_CXX BUILD_DIR
# Reads BUILD_DIR/compile_commands.json. src/engine/ is compiled to code (its target
# attributes fail only when the compiler inlines); the rest is checked for syntax only,
# which takes a third of the time. The target's OpenSSL configuration header is not
# installed for AArch64; the host's stands in (-idirafter), enough for these checks.
set -euo pipefail
export CROSS_CXX=$1
build=$2
export HOST_INCLUDE=/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)

# $1: the build's command for one file; prints what the cross compiler says if it fails.
check() {
  local -a argv args=()
  eval "argv=($1)"
  local file="" i=0
  while [ "$i" -lt "${#argv[@]}" ] && [ "${argv[i]:0:1}" != "-" ]; do i=$((i + 1)); done  # launcher, compiler
  for (( ; i < ${#argv[@]}; i++)); do
    case ${argv[i]} in
      -o) i=$((i + 1)) ;;
      -c) i=$((i + 1)) && file=${argv[i]} ;;
      -m* | -fcf-protection*) ;;  # the host's target options
      *) args+=("${argv[i]}") ;;
    esac
  done
  local mode=(-fsyntax-only)
  [[ $file == */src/engine/* ]] && mode=(-c -o /dev/null)
  local out
  if ! out=$("$CROSS_CXX" "${args[@]}" -march=armv8-a -Werror -idirafter "$HOST_INCLUDE" "${mode[@]}" "$file" 2>&1); then
    printf 'FAILED: %s\n%s\n' "$file" "$out"
  fi
}
export -f check

commands=$(jq -r '.[] | select(.file | test("/src/[^/]+/[^/]+\\.cpp$")) | .command' "$build/compile_commands.json")
count=$(printf '%s\n' "$commands" | grep -c . || true)
if [ "$count" -eq 0 ]; then
  echo "aarch64 sources: no src/ files in $build/compile_commands.json" >&2
  exit 1
fi
failed=$(printf '%s\n' "$commands" | tr '\n' '\0' | xargs -0 -P "$(nproc)" -n 1 bash -c 'check "$1"' _)
if [ -n "$failed" ]; then
  printf '%s\n' "$failed"
  echo "aarch64 sources: some of $count files do not compile for AArch64"
  exit 1
fi
echo "aarch64 sources: all $count files under src/ compile for AArch64 (-march=armv8-a, -Werror)"
