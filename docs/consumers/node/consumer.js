#!/usr/bin/env node
// A rest2mqtt consumer: persistent session, dedupe on source + id, state
// rebuilt from the retained state topics.
//
//   npm install          (mqtt.js, pinned in package.json)
//   node consumer.js [--host H] [--port P] [--id NAME] [--prefix rest2mqtt]
//
// Prints the same lines as ../python/consumer.py:
//   state shipments/42 {"id":42,"stops":1}    a retained state topic (current item)
//   state shipments/42 (deleted)              its empty retained message
//   event rest2mqtt.item.updated rest2mqtt://edge-1/shipments 42 9f2c6b0e4d1a7c35
//   duplicate rest2mqtt://edge-1/shipments 9f2c6b0e4d1a7c35
'use strict';
const mqtt = require('mqtt');

const opt = { host: '127.0.0.1', port: '1883', id: 'shipments-consumer', prefix: 'rest2mqtt' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '');
  if (!(name in opt) || argv[i + 1] === undefined) {
    console.error('usage: node consumer.js [--host H] [--port P] [--id NAME] [--prefix P]');
    process.exit(2);
  }
  opt[name] = argv[i + 1];
}

const state = new Map(); // "endpoint/key" -> current item, from the state topics
const seen = new Set(); // "source id"; a Set iterates oldest first
const REMEMBER = 100000;

function onState(name, payload) {
  // rebuild: the retained message of each state topic is the current item;
  // an empty one means it was deleted
  if (payload.length) {
    state.set(name, JSON.parse(payload));
    console.log('state', name, payload.toString());
  } else {
    state.delete(name);
    console.log('state', name, '(deleted)');
  }
}

function onEvent(ev) {
  // QoS 1 is at least once: a redelivery carries the same source + id
  const key = ev.source + ' ' + ev.id;
  if (seen.has(key)) {
    console.log('duplicate', ev.source, ev.id);
    return;
  }
  seen.add(key);
  if (seen.size > REMEMBER) seen.delete(seen.values().next().value);
  console.log('event', ev.type, ev.source, ev.subject ?? '-', ev.id);
  // ... act on ev.data here (ev.data.after, ev.data.patch, ...)
}

// a persistent session (clean: false + a fixed client id): the broker keeps
// QoS 1 messages for us while we are away
const client = mqtt.connect(`mqtt://${opt.host}:${opt.port}`, {
  clientId: opt.id,
  clean: false,
  protocolVersion: 4,
  reconnectPeriod: 1000,
});
client.on('connect', (connack) => {
  console.log(`connected session_present=${connack.sessionPresent ? 1 : 0}`);
  client.subscribe(`${opt.prefix}/#`, { qos: 1 });
});
client.on('message', (topic, payload) => {
  if (topic === `${opt.prefix}/status`) console.log('status', payload.toString());
  // state_topic: {prefix}/{endpoint}/{key}/state
  else if (topic.endsWith('/state')) onState(topic.slice(opt.prefix.length + 1, -6), payload);
  else onEvent(JSON.parse(payload));
});
client.on('error', (err) => console.error('mqtt:', err.message));
process.on('SIGTERM', () => client.end(() => process.exit(0)));
