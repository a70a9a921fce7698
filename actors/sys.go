package actors

import (
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Version is the broker version published in $SYS; cmd sets it.
var Version = "dev"

// runSys publishes the $SYS topics every interval (uptime counted from
// start) until stop closes. Owner: the Broker, which publishes the first
// set itself, starts it in New and stops it in Shutdown.
func (b *Broker) runSys(start time.Time, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			b.publishSys(start)
		}
	}
}

// publishSys publishes the broker's figures as retained QoS 0 messages
// under $SYS/broker/ (the topics Mosquitto users know).
func (b *Broker) publishSys(start time.Time) {
	st := b.Stats()
	items := []struct{ topic, val string }{
		{"$SYS/broker/version", "nanoactor " + Version},
		{"$SYS/broker/uptime", strconv.FormatInt(int64(time.Since(start)/time.Second), 10) + " seconds"},
		{"$SYS/broker/clients/connected", strconv.FormatInt(st.Connections, 10)},
		{"$SYS/broker/sessions", strconv.FormatInt(st.Sessions, 10)},
		{"$SYS/broker/messages/routed", strconv.FormatUint(st.Routed, 10)},
		{"$SYS/broker/messages/dropped", strconv.FormatUint(st.Dropped, 10)},
		{"$SYS/broker/messages/expired", strconv.FormatUint(st.Expired, 10)},
	}
	root := rootSender{b.sys.Root}
	for _, it := range items {
		b.publish(root, &Message{Topic: []byte(it.topic), Payload: []byte(it.val), Retain: true,
			size: 64 + len(it.topic) + len(it.val)})
	}
}

type rootSender struct{ r *actor.RootContext }

func (s rootSender) Send(pid *actor.PID, m any) { s.r.Send(pid, m) }
