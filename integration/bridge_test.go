package integration

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// bridgeTOML is a [[bridge]] block to url with the given topic rules
// (each a complete [[bridge.topic]] body) and extra bridge keys.
func bridgeTOML(name, url string, protoVer int, extra string, topics ...string) string {
	s := fmt.Sprintf("[[bridge]]\nname = %q\nurl = %q\nproto_ver = %d\nclient_id = %q\n"+
		"keepalive = \"10s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n"+
		"connect_timeout = \"5s\"\nmax_inflight = 64\noutbox_max_messages = 100000\noutbox_max_bytes = \"64MiB\"\n"+
		"outbox_drop = \"oldest\"\nsession_expiry = \"1h\"\n%s",
		name, url, protoVer, "edge-"+name, extra)
	for _, tp := range topics {
		s += "[[bridge.topic]]\n" + tp + "\n"
	}
	return s
}

func TestBridgeSmoke(t *testing.T) {
	remote := startBroker(t, "")
	local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+remote.addr, 5, "",
		"pattern = \"sensors/#\"\ndirection = \"out\"\nqos = 1\nremote_prefix = \"edge-1/\"\nlocal_prefix = \"\"\nretain = true",
		"pattern = \"cmd/#\"\ndirection = \"in\"\nqos = 1\nremote_prefix = \"edge-1/\"\nlocal_prefix = \"\"\nretain = true"))
	eventually(t, 5*time.Second, "bridge connected", func() bool { return local.node.Bridges()[0].Status().Connected })

	rsub := v5Simple(t, remote, "rsub")
	rsub.sub(paho.SubscribeOptions{Topic: "edge-1/#", QoS: 1})
	lsub := v5Simple(t, local, "lsub")
	lsub.sub(paho.SubscribeOptions{Topic: "cmd/#", QoS: 1})
	time.Sleep(200 * time.Millisecond)

	lpub := v5Simple(t, local, "lpub")
	lpub.pub(&paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("21.5")})
	p := rsub.next()
	if p.Topic != "edge-1/sensors/t1" || string(p.Payload) != "21.5" {
		t.Fatalf("remote got %s %q", p.Topic, p.Payload)
	}
	rpub := v5Simple(t, remote, "rpub")
	rpub.pub(&paho.Publish{Topic: "edge-1/cmd/reboot", QoS: 1, Payload: []byte("now")})
	p = lsub.next()
	if p.Topic != "cmd/reboot" || string(p.Payload) != "now" {
		t.Fatalf("local got %s %q", p.Topic, p.Payload)
	}
	t.Logf("status %+v", local.node.Bridges()[0].Status())
}
