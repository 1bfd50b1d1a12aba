#!/usr/bin/env bash
# Real Apache Kafka (single-node KRaft, broker+controller) with no Docker.
# The broker's jars come from Maven Central once, into .cache/kafka/lib; later runs reuse them.
#   scripts/kafka.sh start|stop|restart|status|fetch
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${KAFKA_CACHE:-$root/.cache/kafka}"
lib="$cache/lib"
data="${KAFKA_DATA:-$cache/data}"
port="${KAFKA_PORT:-9092}"
cport="${KAFKA_CONTROLLER_PORT:-9093}"
pidfile="$cache/kafka.pid"
log="$cache/kafka.log"
cluster_id="cGFpbmNhcmUta2Fma2EtMQ"   # fixed: storage formats once and is reused

fetch() {
  if [ -f "$lib/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed to fetch Kafka" >&2; exit 1; }
  echo "kafka.sh: fetching the Kafka broker from Maven Central (once) ..."
  mkdir -p "$lib"
  (cd "$root/scripts/kafka" && mvn -q -B dependency:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime)
  touch "$lib/.complete"
}

write_config() {
  mkdir -p "$data" "$cache"
  cat > "$cache/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  cat > "$cache/log4j2.properties" <<'LOG'
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
LOG
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

java_opts=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
           -Dlog4j2.configurationFile="$cache/log4j2.properties" -Djava.awt.headless=true)

start() {
  fetch
  if running; then echo "kafka.sh: already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  write_config
  java "${java_opts[@]}" -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$cache/server.properties" --ignore-formatted >/dev/null
  nohup java "${java_opts[@]}" -cp "$lib/*" kafka.Kafka "$cache/server.properties" \
      >"$log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 600); do
    if ! running; then echo "kafka.sh: broker exited; see $log" >&2; tail -20 "$log" >&2; exit 1; fi
    if grep -q "Kafka Server started" "$log" && answers; then
      echo "kafka.sh: Kafka 4.3.0 ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0
    fi
    sleep 0.1
  done
  echo "kafka.sh: broker did not become ready in 60 s; see $log" >&2; exit 1
}

stop() {
  if ! running; then rm -f "$pidfile"; echo "kafka.sh: not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$pidfile"
  echo "kafka.sh: stopped"
}

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running && answers; then echo "running"; else echo "stopped"; exit 1; fi ;;
  reset) stop; rm -rf "$data"; echo "kafka.sh: data removed" ;;
  *) echo "usage: $0 start|stop|restart|status|fetch|reset" >&2; exit 2 ;;
esac
