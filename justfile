# nanoactor tasks. `just` is optional: every recipe is a plain go command.
# Install: npm install -g rust-just

default:
    @just --list

# start the broker on the embedded default configuration (or pass --config FILE)
run *ARGS:
    go run ./cmd/nanoactor start {{ARGS}}

# the whole test suite (the README's test command)
test:
    go test ./...

# the test suite under the race detector
test-race:
    go test -race -count=1 ./...

# fuzz every target for TIME each (default 2m)
fuzz TIME="2m":
    go test ./protocol -run '^$' -fuzz '^FuzzReader$' -fuzztime {{TIME}}
    go test ./protocol -run '^$' -fuzz '^FuzzDecode$' -fuzztime {{TIME}}
    go test ./protocol/topic -run '^$' -fuzz '^FuzzIndex$' -fuzztime {{TIME}}
    go test ./protocol/topic -run '^$' -fuzz '^FuzzValidate$' -fuzztime {{TIME}}

# Go benchmarks of the hot paths
bench PKG="./..." TIME="1s":
    go test -run '^$' -bench . -benchmem -benchtime {{TIME}} {{PKG}}

# formatting and vet
lint:
    test -z "$(gofmt -l .)" || (gofmt -l . && exit 1)
    go vet ./...

# integration tests against independent clients (mosquitto_pub/sub, MQTT.js when installed)
interop:
    NANOACTOR_REQUIRE_PEERS=1 go test -count=1 ./integration/...

# the transports soak: TLS, QoS 2, 10 minutes at 10,000 msg/s (DURATION, RATE to change)
soak DURATION="10m" RATE="10000":
    NANOACTOR_SOAK={{DURATION}} NANOACTOR_SOAK_RATE={{RATE}} go test -count=1 -timeout 0 -run '^TestSoak$' -v ./integration

# the same scenarios against Debian's mosquitto and nanoactor, alternating; a table of ratios
bench-peers ROUNDS="3" DUR="5":
    ROUNDS={{ROUNDS}} DUR={{DUR}} bash scripts/bench-peers.sh

# CI as it runs on a fresh machine
ci:
    bash .ci/run
