// MQTT.js peer for nanoactor's integration tests (integration/interop_test.go).
//
//   node peer.mjs PORT VERSION sub CLIENTID TOPIC QOS COUNT
//       subscribe; print {"event":"subscribed","granted":[...]} after SUBACK,
//       then one {"event":"message",...} line per message; exit 0 after COUNT.
//   node peer.mjs PORT VERSION pub CLIENTID TOPIC QOS PAYLOAD [USERPROPS_JSON]
//       publish once (QoS 1/2: until acknowledged); print {"event":"published"}.
//   node peer.mjs PORT VERSION roundtrip CLIENTID PREFIX
//       subscribe PREFIX/# at QoS 2, publish QoS 1 and QoS 2 messages (with a
//       user property on v5) to itself, print both as received, exit 0.
//
// VERSION is the MQTT protocol level: 4 (3.1.1) or 5. Every line on stdout
// is one JSON object; any error prints {"event":"error"} and exits non-zero.
import mqtt from 'mqtt';

const [port, version, mode, clientId, ...args] = process.argv.slice(2);
const protocolVersion = Number(version);

function out(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function fail(what, err) {
  out({ event: 'error', what, message: String((err && err.message) || err) });
  process.exit(2);
}

// Nothing here may take long: the Go test has its own timeout, this one
// makes a stuck peer exit on its own.
setTimeout(() => fail('timeout', 'no completion within 15s'), 15000);

const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
  protocolVersion,
  clientId,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
  keepalive: 30,
});
client.on('error', (err) => fail('client', err));

function message(topic, payload, packet) {
  return {
    event: 'message',
    topic,
    payload: payload.toString(),
    qos: packet.qos,
    retain: packet.retain,
    user: (packet.properties && packet.properties.userProperties) || null,
  };
}

function done(code) {
  client.end(false, {}, () => process.exit(code));
}

client.once('connect', (connack) => {
  out({ event: 'connected', sessionPresent: connack.sessionPresent, reasonCode: connack.reasonCode ?? connack.returnCode });
  if (mode === 'sub') {
    const [topic, qos, count] = args;
    let n = 0;
    client.on('message', (t, payload, packet) => {
      out(message(t, payload, packet));
      if (++n === Number(count)) done(0);
    });
    client.subscribe(topic, { qos: Number(qos) }, (err, granted) => {
      if (err) fail('subscribe', err);
      out({ event: 'subscribed', granted: granted.map((g) => g.qos) });
    });
  } else if (mode === 'pub') {
    const [topic, qos, payload, props] = args;
    const opts = { qos: Number(qos) };
    if (props) opts.properties = { userProperties: JSON.parse(props) };
    client.publish(topic, payload, opts, (err, packet) => {
      if (err) fail('publish', err);
      out({ event: 'published', reasonCode: packet && packet.reasonCode });
      done(0);
    });
  } else if (mode === 'roundtrip') {
    const [prefix] = args;
    const want = new Set(['q1', 'q2']);
    client.on('message', (t, payload, packet) => {
      out(message(t, payload, packet));
      want.delete(payload.toString());
      if (want.size === 0) done(0);
    });
    client.subscribe(`${prefix}/#`, { qos: 2 }, (err, granted) => {
      if (err) fail('subscribe', err);
      out({ event: 'subscribed', granted: granted.map((g) => g.qos) });
      for (const q of [1, 2]) {
        const opts = { qos: q };
        if (protocolVersion === 5) opts.properties = { userProperties: { peer: 'mqttjs', qos: String(q) } };
        client.publish(`${prefix}/q${q}`, `q${q}`, opts, (e) => {
          if (e) fail('publish', e);
        });
      }
    });
  } else {
    fail('usage', `unknown mode ${mode}`);
  }
});
