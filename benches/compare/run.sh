#!/usr/bin/env bash
# nginx and psu-gateway side by side: the same job (nginx.conf, gateway.toml
# here), the same ECDSA P-256 certificate, the same static upstream
# (`psu-gateway sim --static`), driven alternately in one run by wrk
# (HTTP/1.1) and h2load (h2). Prints a Markdown table with the ratios,
# then the CPU the rest of the machine used and the upstream connections
# the gateway opened per 1,000 requests (its own metric). The gateway runs
# the default config (gateway.toml) except in the miss rounds, which have
# a gateway of their own (see "miss_gateway" below).
#
# Installs nothing; needs nginx, wrk and h2load:
#   apt-get install nginx wrk nghttp2-client
# Run: benches/compare/run.sh (`cargo bench --bench load` runs it last).
# Environment: COMPARE_SECS (5), COMPARE_CONNS (64), COMPARE_STREAMS (4, h2
# streams per connection), COMPARE_ROUNDS (3), COMPARE_THREADS (2, per
# load tool), COMPARE_TESTS (all: hit-h1 hit-h2 miss-h1 handshake resumed),
# PSU_GATEWAY (the binary; default: cargo build --release).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
PATH="$PATH:/usr/sbin:/sbin"

missing=()
for tool in nginx wrk h2load openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "compare: SKIPPED: ${missing[*]} not installed (apt-get install nginx wrk nghttp2-client openssl)"
    exit 0
fi

secs=${COMPARE_SECS:-5}
conns=${COMPARE_CONNS:-64}
streams=${COMPARE_STREAMS:-4}
rounds=${COMPARE_ROUNDS:-3}
threads=${COMPARE_THREADS:-2}
bin=${PSU_GATEWAY:-}
if [[ -z $bin ]]; then
    (cd "$root" && cargo build --release --quiet)
    bin=$root/target/release/psu-gateway
fi
dir=$root/target/compare
# The load tools' output files go to a subdirectory: the gateway watches
# the directory of its certificate and token (not recursively) and
# re-reads them after any change there, which h2load's log would cause
# about ten times a second.
out=$dir/out
rm -rf "$dir"
mkdir -p "$out"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port below the kernel's ephemeral range: after a run of short
# connections its ports sit in TIME_WAIT for a minute, and a listener
# cannot bind one of them.
free_port() {
    local port low=32768 _
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range || true
    ((low > 11000)) || low=32768
    while :; do
        port=$((10000 + RANDOM % (low - 10000)))
        listening "$port" || { echo "$port"; return; }
    done
}

# Waits for $2 (process $3) to listen on port $1.
wait_port() {
    local deadline=$((SECONDS + 20))
    until listening "$1"; do
        if ! kill -0 "$3" 2>/dev/null; then
            echo "compare: $2 exited before listening on port $1 (its log goes to /dev/null, as nginx's access log does: run it by hand with $dir)" >&2
            exit 1
        fi
        if ((SECONDS > deadline)); then
            echo "compare: $2 did not listen on port $1 (see $dir)" >&2
            exit 1
        fi
        sleep 0.05
    done
}

# User plus system CPU ticks of the given processes.
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        # nginx's cache loader exits a minute after start.
        [[ -r /proc/$pid/stat ]] || continue
        read -ra fields < <(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# User plus system CPU ticks of the calling shell's waited-for children
# (the load tool a measurement ran).
children_ticks() {
    local fields
    read -ra fields < <(sed 's/.*) //' "/proc/$1/stat")
    echo $((fields[13] + fields[14]))
}

rss_kib() {
    local total=0 pid
    for pid in "$@"; do
        [[ -r /proc/$pid/status ]] || continue
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# The sum of every series of a gateway metric ($2), read from the admin
# listener on port $1.
metric() {
    local body
    body=$(
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        cat <&3
    ) || { echo "compare: cannot read the gateway's metrics on port $1" >&2; exit 1; }
    awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $NF} END {printf "%d\n", s}' <<<"$body"
}

# "connections opened, requests answered" so far, by the gateway whose
# admin listener is on port $1.
gateway_counts() {
    echo "$(metric "$1" psu_gateway_upstream_connections_opened_total) $(metric "$1" psu_gateway_requests_total)"
}

# The upstream, the certificate both proxies serve, the app token.
"$bin" sim --static --listen 127.0.0.1:0 >"$dir/sim.out" 2>/dev/null &
sim_pid=$!
pids+=("$sim_pid")
deadline=$((SECONDS + 20))
until grep -q listening "$dir/sim.out" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "compare: the simulator did not start" >&2; exit 1; }
    sleep 0.05
done
upstream=$(sed -n 's|.*http://||p' "$dir/sim.out")
"$bin" dev-cert --out "$dir" --name localhost >/dev/null
(umask 077 && "$bin" sim mint-token --identity psu-gateway --role Administrator --ttl 24h 2>/dev/null >"$dir/app-token")
token=$(cat "$dir/app-token")

read -ra tests <<<"${COMPARE_TESTS:-hit-h1 hit-h2 miss-h1 handshake resumed}"

# Writes gateway.toml with ports $2 and $3 (admin) filled in to $1.
gateway_config() {
    sed -e "s/@PORT@/$2/" -e "s/@ADMIN_PORT@/$3/" -e "s/@UPSTREAM@/$upstream/" "$here/gateway.toml" >"$1"
}

gateway_port=$(free_port)
gateway_admin=$(free_port)
gateway_config "$dir/gateway.toml" "$gateway_port" "$gateway_admin"
RUST_LOG=info "$bin" run --config "$dir/gateway.toml" 2>/dev/null &
gateway_pid=$!
pids+=("$gateway_pid")

# The miss rounds' gateway: the default config but for two keys. Every
# request of those rounds is a new session from one address (wrk's,
# 127.0.0.1); the default session.miss_rate (20/s, burst 40) would answer
# nearly all of them 429 and the default cap of 32 introspections in
# flight would hold back the rest, while the rounds measure what a miss
# costs (nginx's auth_request has neither limit). The flood scenario of
# benches/load measures the defaults against such a load.
miss_gateway_pid=""
if [[ " ${tests[*]} " == *" miss-h1 "* ]]; then
    miss_gateway_port=$(free_port)
    miss_gateway_admin=$(free_port)
    gateway_config "$dir/gateway-miss.toml.in" "$miss_gateway_port" "$miss_gateway_admin"
    awk -v conns="$conns" '{print} $0 == "[session]" {
        print "miss_rate = \"1000000/s\""
        print "max_inflight_introspections = " conns
    }' "$dir/gateway-miss.toml.in" >"$dir/gateway-miss.toml"
    rm "$dir/gateway-miss.toml.in"
    RUST_LOG=info "$bin" run --config "$dir/gateway-miss.toml" 2>/dev/null &
    miss_gateway_pid=$!
    pids+=("$miss_gateway_pid")
fi

nginx_port=$(free_port)
user=""
[[ $(id -u) == 0 ]] && user="user root;"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$nginx_port|" -e "s|@UPSTREAM@|$upstream|" \
    -e "s|@TOKEN@|$token|" -e "s|@USER@|$user|" "$here/nginx.conf" >"$dir/nginx.conf"
nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")

wait_port "$gateway_port" gateway "$gateway_pid"
wait_port "$gateway_admin" "the gateway's admin listener" "$gateway_pid"
if [[ -n $miss_gateway_pid ]]; then
    wait_port "$miss_gateway_port" "the miss rounds' gateway" "$miss_gateway_pid"
    wait_port "$miss_gateway_admin" "the miss rounds' gateway's admin listener" "$miss_gateway_pid"
fi
wait_port "$nginx_port" nginx "$nginx_pid"
mapfile -t nginx_workers < <(pgrep -P "$nginx_pid")

# A session value of PSU's shape (an ASP.NET Core Data Protection payload:
# CfDJ8, base64url, at least 64 characters), which the gateway's default
# session.cookie_shape wants before it asks PSU. The static upstream takes
# any value for a live session, so there is no sign-in. The miss rounds'
# cookies add digits and dashes to it, which keep that shape.
session="CfDJ8$(head -c 600 /dev/urandom | base64 -w0 | tr '+/' '-_' | head -c 595)"
cookie=".AspNetCore.Identity.Application=$session"

# The warm-up before a measured run: 1 s of the same load, so that both
# proxies have their upstream connections open (and nginx its cache).
# hit-h2 has none here: h2load's measured run warms up for its first second.
warm_up() {
    local test=$1 port=$2 url="https://127.0.0.1:$2/api/v1/usersession"
    case $test in
    hit-h1) wrk -t"$threads" -c"$conns" -d1s -H "Cookie: $cookie" "$url" >/dev/null ;;
    miss-h1)
        WRK_COOKIE_PREFIX="$cookie-$port-$RANDOM$RANDOM-w" wrk -t"$threads" -c"$conns" -d1s -s "$here/wrk.lua" "$url" >/dev/null
        ;;
    resumed) wrk -t"$threads" -c"$conns" -d1s -H "Connection: close" "https://127.0.0.1:$port/apps/page" >/dev/null ;;
    esac
}

# One measurement: with the gateway's admin port as $3, warms up, then
# prints "req/s p50 p99 p99.9 errors opened answered" (latencies in µs;
# the last two are the upstream connections the gateway opened and the
# requests it answered while the load tool measured, "- -" for nginx).
measure() {
    local line before after opened0 answered0 opened1 answered1 reader=""
    warm_up "$1" "$2"
    if [[ -n ${3:-} && $1 == hit-h2 ]]; then
        # h2load measures after a warm-up second of its own; so do these.
        (sleep 1 && gateway_counts "$3" >"$out/counts") &
        reader=$!
    elif [[ -n ${3:-} ]]; then
        gateway_counts "$3" >"$out/counts"
    fi
    line=$(measured_run "$1" "$2")
    if [[ -n ${3:-} ]]; then
        [[ -z $reader ]] || wait "$reader"
        before=$(<"$out/counts")
        after=$(gateway_counts "$3")
        read -r opened0 answered0 <<<"$before"
        read -r opened1 answered1 <<<"$after"
        echo "$line $((opened1 - opened0)) $((answered1 - answered0))"
    else
        echo "$line - -"
    fi
}

# The measured run itself: prints "req/s p50 p99 p99.9 errors".
measured_run() {
    local test=$1 port=$2 url="https://127.0.0.1:$2/api/v1/usersession"
    case $test in
    hit-h1)
        wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$here/wrk.lua" -H "Cookie: $cookie" "$url" |
            awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
        ;;
    miss-h1)
        WRK_COOKIE_PREFIX="$cookie-$port-$RANDOM$RANDOM-" wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$here/wrk.lua" "$url" |
            awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
        ;;
    handshake)
        # Full handshakes (openssl s_time -new never resumes), no request:
        # the handshake rate alone. Several clients, each one at a time.
        local clients=$((conns / 4)) i started elapsed total=0 clients_pids=()
        started=$(date +%s%N)
        for ((i = 0; i < clients; i++)); do
            openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" >"$out/s_time.$i" 2>&1 &
            clients_pids+=($!)
        done
        wait "${clients_pids[@]}"
        elapsed=$(($(date +%s%N) - started))
        for ((i = 0; i < clients; i++)); do
            total=$((total + $(awk '/connections in .* real seconds/ {print $1}' "$out/s_time.$i")))
        done
        awk -v n="$total" -v ns="$elapsed" 'BEGIN {printf "%.1f 0 0 0 0\n", n / (ns / 1e9)}'
        ;;
    resumed)
        url="https://127.0.0.1:$port/apps/page"
        wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$here/wrk.lua" -H "Connection: close" "$url" |
            awk '/^RESULT/ {print $2, $3, $4, $5, $6}'
        ;;
    hit-h2)
        h2load -t"$threads" -c"$conns" -m"$streams" -D "$secs" --warm-up-time=1 \
            -H "cookie: $cookie" --log-file="$out/h2load.log" "$url" >"$out/h2load.out"
        local rate total ok
        rate=$(awk '/^finished in/ {print $4}' "$out/h2load.out")
        total=$(awk '/^requests:/ {print $2}' "$out/h2load.out")
        ok=$(awk '/^status codes:/ {print $3}' "$out/h2load.out")
        cut -f3 "$out/h2load.log" | sort -n | awk -v rate="$rate" -v errors=$((total - ok)) \
            '{a[NR] = $1} END {print rate, a[int(NR * 0.5)], a[int(NR * 0.99)], a[int(NR * 0.999)], errors}'
        ;;
    esac
}

declare -A rate p50 p99 errors cpu tool_cpu upstream_cpu connects
echo "compare: ${secs} s per run, $conns connections ($streams h2 streams each), $threads load-tool threads, $rounds rounds, $(nproc) cores" >&2
for ((round = 1; round <= rounds; round++)); do
    for test in "${tests[@]}"; do
        # Alternate who goes first, so neither always runs on a warmer machine.
        order=(nginx gateway)
        ((round % 2 == 0)) && order=(gateway nginx)
        for who in "${order[@]}"; do
            if [[ $who == nginx ]]; then
                port=$nginx_port
                admin=""
                procs=("${nginx_workers[@]}" "$nginx_pid")
            elif [[ $test == miss-h1 ]]; then
                port=$miss_gateway_port
                admin=$miss_gateway_admin
                procs=("$miss_gateway_pid")
            else
                port=$gateway_port
                admin=$gateway_admin
                procs=("$gateway_pid")
            fi
            before=$(cpu_ticks "${procs[@]}")
            upstream_before=$(cpu_ticks "$sim_pid")
            # The load tool's CPU: what this subshell's children used.
            read -r r l50 l99 _ e opened answered tool < <(
                me=$BASHPID
                line=$(measure "$test" "$port" "$admin")
                echo "$line $(children_ticks "$me")"
            )
            after=$(cpu_ticks "${procs[@]}")
            upstream_after=$(cpu_ticks "$sim_pid")
            echo "compare: round $round $test $who: $r req/s, p99 $l99 µs, $e errors" >&2
            key="$test,$who"
            rate[$key]="${rate[$key]:-} $r"
            p50[$key]="${p50[$key]:-} $l50"
            p99[$key]="${p99[$key]:-} $l99"
            errors[$key]=$((${errors[$key]:-0} + e))
            [[ $opened == - ]] || connects[$test]="${connects[$test]:-} $opened:$answered"
            # CPU per request over the whole measurement, warm-up included
            # (1 s, none for handshake): both sides alike.
            warm=1
            [[ $test == handshake ]] && warm=0
            served=$(awk -v r="$r" -v s="$secs" -v w="$warm" 'BEGIN {print int(r * (s + w))}')
            tick_us=$((1000000 / $(getconf CLK_TCK)))
            cpu[$key]="${cpu[$key]:-} $(((after - before) * tick_us)):$served"
            tool_cpu[$key]="${tool_cpu[$key]:-} $((tool * tick_us)):$served"
            upstream_cpu[$key]="${upstream_cpu[$key]:-} $(((upstream_after - upstream_before) * tick_us)):$served"
        done
    done
done

# The median of whitespace-separated numbers, printed with the format $1.
median() {
    tr ' ' '\n' | awk NF | LC_ALL=C sort -g |
        awk -v f="$1" '{a[NR] = $1} END {if (!NR) {print "-"; exit} printf f, NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
# The median over rounds of gateway/nginx, each round's pair measured back
# to back: slow drift of a shared machine cancels out of each ratio.
round_ratio() {
    paste -d' ' <(tr ' ' '\n' <<<"$1" | awk NF) <(tr ' ' '\n' <<<"$2" | awk NF) |
        awk 'NF == 2 && $1 > 0 {print $2 / $1}' | median "%.2f"
}
cpu_per_10k() { tr ' ' '\n' | awk -F: 'NF == 2 {us += $1; n += $2} END {if (n) printf "%.2f", us / 1e6 * 10000 / n; else print "-"}'; }
ms() { awk -v us="$1" 'BEGIN {if (us + 0 > 0) printf "%.2f ms", us / 1000; else print "-"}'; }

echo
echo "| test | nginx req/s | gateway req/s | gateway/nginx | nginx p50 | gateway p50 | nginx p99 | gateway p99 | nginx CPU s/10k | gateway CPU s/10k | errors nginx/gateway |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for test in "${tests[@]}"; do
    n=$(median %.0f <<<"${rate[$test,nginx]}")
    g=$(median %.0f <<<"${rate[$test,gateway]}")
    ratio=$(round_ratio "${rate[$test,nginx]}" "${rate[$test,gateway]}")
    echo "| $test | $n | $g | $ratio | $(ms "$(median %.0f <<<"${p50[$test,nginx]}")") | $(ms "$(median %.0f <<<"${p50[$test,gateway]}")") | $(ms "$(median %.0f <<<"${p99[$test,nginx]}")") | $(ms "$(median %.0f <<<"${p99[$test,gateway]}")") | $(cpu_per_10k <<<"${cpu[$test,nginx]}") | $(cpu_per_10k <<<"${cpu[$test,gateway]}") | ${errors[$test,nginx]}/${errors[$test,gateway]} |"
done
echo
echo "The rest of the machine's CPU, s per 10k requests (in the nginx run / in the gateway run):"
echo
echo "| test | load tool | upstream |"
echo "|---|---|---|"
for test in "${tests[@]}"; do
    echo "| $test | $(cpu_per_10k <<<"${tool_cpu[$test,nginx]}") / $(cpu_per_10k <<<"${tool_cpu[$test,gateway]}") | $(cpu_per_10k <<<"${upstream_cpu[$test,nginx]}") / $(cpu_per_10k <<<"${upstream_cpu[$test,gateway]}") |"
done
# "opened:answered" pairs, one per round: opened per 1,000 answered over
# all rounds, each round's, and the totals.
per_1k() {
    tr ' ' '\n' | awk -F: 'NF == 2 {
        o += $1; n += $2
        rounds = rounds sprintf(" %s", $2 ? sprintf("%.2f", $1 * 1000 / $2) : "-")
    } END {if (n) printf "%.2f |%s | %d / %d", o * 1000 / n, rounds, o, n; else printf "- | - | -"}'
}
echo
echo "Upstream connections the gateway opened per 1,000 requests it answered (psu_gateway_upstream_connections_opened_total and psu_gateway_requests_total, read when the load tool starts measuring, after the warm-up, and when it ends):"
echo
echo "| test | per 1,000 requests | each round | opened / requests |"
echo "|---|---|---|---|"
for test in "${tests[@]}"; do
    [[ -n ${connects[$test]:-} && $test != handshake ]] || continue
    echo "| $test | $(per_1k <<<"${connects[$test]}") |"
done
echo
rss_line="RSS after the run: nginx $(($(rss_kib "${nginx_workers[@]}" "$nginx_pid") / 1024)) MiB (master, workers and cache processes), gateway $(($(rss_kib "$gateway_pid") / 1024)) MiB"
[[ -n $miss_gateway_pid ]] && rss_line+=", the miss rounds' gateway $(($(rss_kib "$miss_gateway_pid") / 1024)) MiB"
echo "$rss_line"
refused="gateway $(metric "$gateway_admin" psu_gateway_rejections_total), connections closed at accept $(metric "$gateway_admin" psu_gateway_client_connections_refused_total)"
[[ -n $miss_gateway_pid ]] && refused+="; the miss rounds' gateway $(metric "$miss_gateway_admin" psu_gateway_rejections_total), connections closed at accept $(metric "$miss_gateway_admin" psu_gateway_client_connections_refused_total)"
echo "Requests refused over the run (psu_gateway_rejections_total, all reasons, and psu_gateway_client_connections_refused_total): $refused"
echo "Medians over $rounds rounds; gateway/nginx is the median of the rounds' ratios, each round running both back to back; CPU is over all rounds. hit: one session, cached (wrk HTTP/1.1; h2load h2). miss: a new session cookie per request (wrk), on a gateway whose miss_rate and max_inflight_introspections are raised. handshake: full TLS handshakes per second, no request ($((conns / 4)) openssl s_time -new clients). resumed: a new connection per request with TLS session resumption (wrk, Connection: close)."
