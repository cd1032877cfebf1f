#!/usr/bin/env bash
# A cluster of clusterd nodes on one machine, one network namespace per node, joined by
# a Linux bridge that lives in a namespace of its own (the host's network is untouched).
#
#   scripts/netns-cluster.sh up N [PREFIX]      make N namespaces PREFIX-n1..N (root)
#   scripts/netns-cluster.sh down [PREFIX]      remove them
#   scripts/netns-cluster.sh exec I CMD...      run CMD in node I's namespace
#
# Node I has address 10.213.0.I/24 on eth0. Sourced, it provides netns_up, netns_down,
# netns_exec and netns_addr for scripts and tests.

NETNS_PREFIX=${NETNS_PREFIX:-cld}
NETNS_SUBNET=${NETNS_SUBNET:-10.213.0}

netns_addr() { echo "${NETNS_SUBNET}.$1"; }

netns_down() {
  local prefix=${1:-$NETNS_PREFIX} ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-(sw|n[0-9]+)$"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
  done
  return 0
}

netns_up() {
  local n=$1 prefix=${2:-$NETNS_PREFIX} i ns
  netns_down "$prefix"
  ip netns add "${prefix}-sw" || return 1
  ip -n "${prefix}-sw" link add br0 type bridge
  ip -n "${prefix}-sw" link set br0 up
  ip -n "${prefix}-sw" link set lo up
  for i in $(seq 1 "$n"); do
    ns="${prefix}-n${i}"
    ip netns add "$ns" || return 1
    ip link add "${prefix}v${i}" type veth peer name eth0 netns "$ns" || return 1
    ip link set "${prefix}v${i}" netns "${prefix}-sw"
    ip -n "${prefix}-sw" link set "${prefix}v${i}" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(netns_addr "$i")/24" brd + dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 224.0.0.0/4 dev eth0
  done
}

netns_exec() {
  local i=$1
  shift
  ip netns exec "${NETNS_PREFIX}-n${i}" "$@"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    up) netns_up "$2" "${3:-$NETNS_PREFIX}" ;;
    down) netns_down "${2:-$NETNS_PREFIX}" ;;
    exec) shift; netns_exec "$@" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
fi
