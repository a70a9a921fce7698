#!/usr/bin/env bash
# bench-peers: the same load scenarios against Debian's mosquitto and
# nanoactor on loopback, in alternation, ROUNDS times; prints the median of
# each side and the ratio. The load generator is `nanoactor bench pubsub`
# on the same machine. Both brokers get raised queue and inflight limits so
# that neither drops (mosquitto: max_queued_messages, max_inflight_messages).
#
# Both send without Nagle's algorithm (TCP_NODELAY): nanoactor's default
# (tcp_nodelay = true), and mosquitto's set_tcp_nodelay true. Mosquitto's
# own default leaves Nagle on, which holds small writes back for an ACK:
# fewer segments and less CPU, more latency. NAGLE=1 runs both that way
# instead (mosquitto's default, nanoactor's tcp_nodelay = false).
#
#   ROUNDS=3 DUR=5 scripts/bench-peers.sh      (just bench-peers)
#
# mochi-mqtt (a Go broker) runs as a third peer when scripts/mochi-peer
# builds (its own module: the Go module proxy must be reachable once);
# MOCHI=0 leaves it out. It always sends with TCP_NODELAY (Go's default).
#
# NANOACTOR=path runs a prebuilt binary instead of building this tree (to
# compare two builds under the same load); ONLY=regex keeps the scenarios
# whose name matches (ONLY=p99 for the latency row alone).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-5}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if ! command -v mosquitto >/dev/null; then
	echo "installing mosquitto (Debian package)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [[ -n ${NANOACTOR:-} ]]; then
	NA=$(realpath "$NANOACTOR")
else
	go build -o "$work/nanoactor" ./cmd/nanoactor
	NA="$work/nanoactor"
fi

MOCHI_BIN=""
if [[ ${MOCHI:-1} != 0 ]]; then
	if (cd scripts/mochi-peer && go build -o "$work/mochi-peer" .) 2>"$work/mochi-build.log"; then
		MOCHI_BIN="$work/mochi-peer"
	else
		echo "mochi-peer did not build (see below); running without it" >&2
		tail -3 "$work/mochi-build.log" >&2
	fi
fi

# A throwaway CA and server certificate for the TLS scenario.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
	-keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
	-days 1 -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null

# mosquitto started as root drops to the "mosquitto" user: it must be able
# to read the files.
chmod 755 "$work"
chmod 644 "$work"/*.pem "$work"/*.key

M=21883 MT=21884 N=22883 NT=22884 X=23883 XT=23884
cat >"$work/mosquitto.conf" <<CONF
listener $M 127.0.0.1
listener $MT 127.0.0.1
certfile $work/server.pem
keyfile $work/server.key
allow_anonymous true
persistence false
max_queued_messages 10000000
max_queued_bytes 0
max_inflight_messages 0
log_type error
CONF
if [[ -z ${NAGLE:-} ]]; then
	echo "set_tcp_nodelay true" >>"$work/mosquitto.conf"
	nodelay=true
else
	nodelay=false
fi
cat >"$work/nanoactor.toml" <<CONF
[log]
level = "warn"
[[listener]]
protocol = "tcp"
bind = "127.0.0.1:$N"
tcp_nodelay = $nodelay
[[listener]]
protocol = "tls"
bind = "127.0.0.1:$NT"
tcp_nodelay = $nodelay
cert_file = "$work/server.pem"
key_file = "$work/server.key"
[mqtt]
max_queued_messages = 0
max_queued_bytes = "1GiB"
max_inflight = 65535
max_outbound_bytes = "64MiB"
[sys]
interval = "0s"
CONF
"$MOSQ" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
"$NA" start --config "$work/nanoactor.toml" 2>"$work/nanoactor.log" &
ports="$M $N"
if [[ -n $MOCHI_BIN ]]; then
	"$MOCHI_BIN" -addr "127.0.0.1:$X" -tls "127.0.0.1:$XT" -cert "$work/server.pem" -key "$work/server.key" \
		2>"$work/mochi.log" &
	ports="$ports $X"
fi
sleep 1
for p in $ports; do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "broker on port $p did not start:" >&2
		cat "$work/mosquitto.log" "$work/nanoactor.log" "$work/mochi.log" >&2 2>/dev/null || true
		exit 1
	fi
done

# name | bench flags | what to compare (rate or p99)
scenarios=(
	"qos0 fan-in 10->1|-c 10 --subs 1 -q 0 -I 0 -s 64|rate"
	"qos0 fan-out 1->50|-c 1 --subs 50 -q 0 -I 0 -s 64|rate"
	"qos1 10 pairs|-c 10 --subs 10 -t bench/%i --filter bench/%i -q 1 -I 0 -s 64|rate"
	"qos2 10 pairs v5|-c 10 --subs 10 -t bench/%i --filter bench/%i -q 2 -V 5 -I 0 -s 64|rate"
	"qos1 tls 4 pairs|-c 4 --subs 4 -t bench/%i --filter bench/%i -q 1 -I 0 -s 64 TLS|rate"
	"p99 qos1 10x500/s|-c 10 --subs 1 -q 1 -I 2ms -s 64|p99"
)

# run PORT TLSPORT FLAGS -> "rate p99 lost dup ooo"
run() {
	local port=$1 tport=$2 flags=$3
	if [[ $flags == *TLS* ]]; then
		flags=${flags/TLS/}
		flags="$flags -L mqtts://127.0.0.1:$tport --cafile $work/ca.pem"
	else
		flags="$flags -p $port"
	fi
	# shellcheck disable=SC2086
	out=$("$NA" bench pubsub $flags -d "$DUR" 2>&1 </dev/null | tail -5) || true
	rate=$(sed -n 's/^received: [0-9]* msgs, \([0-9.]*\) msg\/s.*/\1/p' <<<"$out")
	p99=$(sed -n 's/.* p99=\([^ ]*\) .*/\1/p' <<<"$out")
	lost=$(sed -n 's/.*lost=\([0-9]*\) duplicated=\([0-9]*\) out_of_order=\([0-9]*\).*/\1 \2 \3/p' <<<"$out")
	echo "${rate:-0} ${p99:-?} ${lost:-? ? ?}"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
todur() { # 1.5ms / 800µs / 1.2s -> microseconds
	awk '{v=$1; if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /µs$/) {sub(/µs/,"",v); print v+0} else if (v ~ /s$/) {sub(/s/,"",v); print v*1000000} else print 0}' <<<"$1"
}

# ratio A B KIND: how many times better nanoactor (B) is than A.
ratio() {
	awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN {
		if (k == "p99") { if (b > 0) printf "%.2f", a / b; else print "-" }
		else { if (a > 0) printf "%.2f", b / a; else print "-" } }'
}
# cell VALUE KIND
cell() { if [[ $2 == p99 ]]; then printf '%10sµs' "$1"; else printf '%10.0f/s' "$1"; fi; }

if [[ -n $MOCHI_BIN ]]; then
	printf '%-20s %12s %12s %12s %6s %6s  %s\n' scenario mosquitto mochi nanoactor vs-mq vs-mo "lost/dup/ooo (mosq | mochi | nano)"
else
	printf '%-20s %12s %12s %6s  %s\n' scenario mosquitto nanoactor ratio "lost/dup/ooo (mosq | nano)"
fi
for sc in "${scenarios[@]}"; do
	IFS='|' read -r name flags kind <<<"$sc"
	[[ -z ${ONLY:-} || $name =~ $ONLY ]] || continue
	ms=() ns=() xs=() mq="" nq="" xq=""
	for ((r = 0; r < ROUNDS; r++)); do
		read -r mr mp ml1 ml2 ml3 <<<"$(run $M $MT "$flags")"
		if [[ -n $MOCHI_BIN ]]; then
			read -r xr xp xl1 xl2 xl3 <<<"$(run $X $XT "$flags")"
			if [[ $kind == p99 ]]; then xs+=("$(todur "$xp")"); else xs+=("$xr"); fi
			xq+="$xl1/$xl2/$xl3 "
		fi
		read -r nr np nl1 nl2 nl3 <<<"$(run $N $NT "$flags")"
		if [[ $kind == p99 ]]; then ms+=("$(todur "$mp")") ns+=("$(todur "$np")"); else ms+=("$mr") ns+=("$nr"); fi
		mq+="$ml1/$ml2/$ml3 " nq+="$nl1/$nl2/$nl3 "
	done
	m=$(printf '%s\n' "${ms[@]}" | median)
	n=$(printf '%s\n' "${ns[@]}" | median)
	if [[ -n $MOCHI_BIN ]]; then
		x=$(printf '%s\n' "${xs[@]}" | median)
		printf '%-20s %s %s %s %6s %6s  %s| %s| %s\n' "$name" "$(cell "$m" "$kind")" "$(cell "$x" "$kind")" "$(cell "$n" "$kind")" \
			"$(ratio "$m" "$n" "$kind")" "$(ratio "$x" "$n" "$kind")" "$mq" "$xq" "$nq"
	else
		printf '%-20s %s %s %6s  %s| %s\n' "$name" "$(cell "$m" "$kind")" "$(cell "$n" "$kind")" "$(ratio "$m" "$n" "$kind")" "$mq" "$nq"
	fi
done
echo "(ratio: nanoactor/peer for rates, peer/nanoactor for p99; higher is better for nanoactor)"
echo "(TCP_NODELAY: $nodelay on mosquitto and nanoactor$([[ $nodelay == true ]] && echo '; NAGLE=1 for Nagle on both')$([[ -n $MOCHI_BIN ]] && echo '; mochi-mqtt: always true'))"
