# With multicast and broadcast off, nodes find each other from static --peer seeds: two
# nodes name only node 1, node 1 names nobody, and all three still reach full membership
# (node 1 answers and passes on the addresses it knows). A fourth node with no seed stays
# alone, which shows that nothing was multicast.
source "$(dirname "$0")/lib.sh"
require_netns 4

seed="$(netns_addr 1):8888"
start_node 1 --no-multicast
start_node 2 --no-multicast --peer "$seed"
start_node 3 --no-multicast --peer "$seed"
start_node 4 --no-multicast

all_alive() { for i in 1 2 3; do [ "$(count_status "$i" alive)" = 3 ] || return 1; done; }
wait_until 10 all_alive || fail "static peers did not reach full membership: $(api 2 /v1/devices | jq -c '[.nodes[] | {name, status}]')"
ok "3 nodes with multicast off reached full membership from one seed"
sleep 1
for i in 1 2 3; do
  [ "$(api "$i" /v1/devices | jq '.nodes | length')" = 3 ] || fail "node $i lists the unseeded node 4"
done
[ "$(api 4 /v1/devices | jq '.nodes | length')" = 1 ] || fail "node 4 found peers without multicast or a seed"
ok "the node without a seed stays alone: nothing was multicast"

# A seeded peer that dies is still expired, and rejoins after a restart.
stop_node 3 KILL
n3_gone() { [ "$(count_status 1 gone)" = 1 ] && [ "$(count_status 2 gone)" = 1 ]; }
wait_until 5 n3_gone || fail "the killed static peer was not expired"
start_node 3 --no-multicast --peer "$seed"
wait_until 10 all_alive || fail "the restarted static peer did not rejoin"
ok "a static peer is expired when killed and rejoins when restarted"

finish
