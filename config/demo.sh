#!/usr/bin/env bash
# One-command demo: installs what is missing, builds, starts a mosquitto on
# 127.0.0.1 (unless one already answers there) and runs rest2mqtt on
# config/demo.yaml, which polls ./demo-sample.json. Edit that file and watch
# the events arrive. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install-deps
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build rest2mqtt >/dev/null

export MQTT_PORT=${MQTT_PORT:-1883}
export REST2MQTT_DEMO_SAMPLE=${REST2MQTT_DEMO_SAMPLE:-$PWD/demo-sample.json}
[ -f "$REST2MQTT_DEMO_SAMPLE" ] || cp config/demo-sample.json "$REST2MQTT_DEMO_SAMPLE"

broker_pid=""
cleanup() { [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null; true; }
trap cleanup EXIT
if ! timeout 3 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t rest2mqtt/probe -n 2>/dev/null; then
  mkdir -p build/demo-broker
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" \
    > build/demo-broker/mosquitto.conf
  mosquitto -c build/demo-broker/mosquitto.conf >build/demo-broker/log 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do
    timeout 1 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t rest2mqtt/probe -n 2>/dev/null && break
    sleep 0.1
  done
  echo "started mosquitto on 127.0.0.1:$MQTT_PORT (log: build/demo-broker/log)"
fi

cat <<MSG

  rest2mqtt demo is running. In another terminal, watch the events:

      mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t 'rest2mqtt/#' -v

  then edit $REST2MQTT_DEMO_SAMPLE (change "stops_away", say) and save.
  One edit = one event. Saving unchanged, reordering keys or changing only
  "fetchedAt" produces none. Ctrl-C stops the demo.

MSG
build/rest2mqtt run -c config/demo.yaml
